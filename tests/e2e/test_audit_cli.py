"""``lineinspect audit`` as a user drives it (torch unimportable): frames answered by a
real server, then the stopped server's store read as CSV and JSON with filters."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from service.api.app import create_app
from service.audit.cli import CSV_COLUMNS
from service.registry import Registry
from tests.conftest import defect_image, encode
from tests.support.grpc_app import settings_for
from tests.support.http import HTTP
from tests.support.servers import serve_app

TORCHLESS = "import sys; sys.modules['torch'] = None; from service.cli import main; main()"
FRAMES = [  # frame id, line, camera, image
    ("a", "L1", "c1", encode(defect_image())),
    ("b", "L1", "c2", encode(np.full((160, 200, 3), 20, np.uint8))),
    ("c", "L2", "c1", encode(defect_image(box=(10, 10, 60, 60)))),
    ("d", "L1", "c1", encode(defect_image(box=(20, 30, 70, 90)))),
]


def audit(*args: str, root: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", TORCHLESS, "audit", *args, "--data-root", str(root)],
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


def test_audit_rows_as_csv_and_json_with_filters(tiny_registry: Registry, tmp_path: Path) -> None:
    root = tmp_path / "data"
    settings = settings_for(tiny_registry.root, data_root=root, capture_samplers=[])
    records = {}
    with serve_app(create_app(settings)) as url:
        for fid, line, camera, image in FRAMES:
            r = HTTP.post(
                f"{url}/v1/inspect",
                content=image,
                headers={"Content-Type": "image/jpeg"},
                params={"frame_id": fid, "line": line, "camera": camera},
            )
            assert r.status_code == 200
            records[fid] = r.json()
    # the server stopped: its writer wrote every queued row first

    every = json.loads(audit("--format", "json", root=root).stdout)
    assert [r["frame_id"] for r in every] == ["d", "c", "b", "a"]  # newest first
    for row in every:
        rec = records[row["frame_id"]]
        assert row["verdict"] == rec["verdict"] and row["line"] == rec["line"]
        assert row["model"] == {"name": "tiny", "version": 1} and row["edge"] == "rest"
    assert {r["verdict"] for r in every} == {"pass", "fail"}

    out = audit("--format", "csv", "--line", "L1", "--camera", "c1", root=root)
    table = list(csv.reader(io.StringIO(out.stdout)))
    assert table[0] == list(CSV_COLUMNS)
    assert [r[0] for r in table[1:]] == ["d", "a"]
    d = dict(zip(CSV_COLUMNS, table[1], strict=True))
    assert d["model_name"] == "tiny" and d["model_version"] == "1" and d["line"] == "L1"
    assert json.loads(d["counts"]) == every[0]["counts"]
    assert "2 audit rows" in out.stderr

    page = json.loads(audit("--format", "json", "--offset", "1", "--limit", "2", root=root).stdout)
    assert [r["frame_id"] for r in page] == ["c", "b"]
    passed = json.loads(audit("--verdict", "pass", "--model", "tiny:1", root=root).stdout)
    assert [r["frame_id"] for r in passed] == [
        f for f in ("d", "c", "b", "a") if records[f]["verdict"] == "pass"
    ]
    assert json.loads(audit("--model", "tiny:2", root=root).stdout) == []
    later = json.loads(audit("--from", every[1]["time"], root=root).stdout)
    assert [r["frame_id"] for r in later] == ["d", "c"]
    target = tmp_path / "out.csv"
    audit("--format", "csv", "--out", str(target), root=root)
    assert len(target.read_text().splitlines()) == 5
    bad = audit("--from", "yesterday", root=root, check=False)
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr
