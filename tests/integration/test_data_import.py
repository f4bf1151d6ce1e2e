"""``data import`` of YOLO, VOC, COCO and Label Studio folders and zips: duplicates,
bad files refused alone, zip-slip refused, the golden set frozen at the first import."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from service.errors import InvalidInput
from service.store import Store, datasets, importer, labels, samples
from service.store.splits import majority_label
from tests.support.datasets import CLASSES, coco_folder, png, voc_folder, yolo_folder
from tests.support.stores import state


@pytest.fixture
def st(tmp_path: Path) -> Store:
    s = Store(tmp_path / "data", val_fraction=0.2, golden_per_class=2)
    yield s  # type: ignore[misc]
    s.close()


def _current(st: Store, name: str = "d") -> dict[str, list[tuple[str, tuple[float, ...]]]]:
    out = {}
    with st.transaction() as s:
        ds = datasets.get(s, name)
        rows, _ = samples.page(s, ds, limit=500)
        for r in rows:
            cur = labels.current(s, r)
            boxes = cur.boxes if cur else []
            out[r.sha256] = sorted(
                (b["label"], tuple(round(v, 2) for v in b["box"])) for b in boxes
            )
    return out


@pytest.mark.parametrize(
    ("fmt", "make", "corrupt"),
    [
        ("yolo", yolo_folder, "images/train/broken.png"),
        ("voc", voc_folder, "JPEGImages/broken.png"),
        ("coco", coco_folder, None),
    ],
)
def test_import_each_format_with_duplicates_and_a_bad_file(
    st: Store,
    tmp_path: Path,
    fmt: str,
    make,
    corrupt: str | None,  # type: ignore[no-untyped-def]
) -> None:
    root = make(tmp_path / fmt, 12)
    shutil.rmtree(root / "src")
    if fmt == "voc":  # a bad image with a valid annotation, and a malformed XML
        (root / "Annotations" / "broken.xml").write_text(
            (root / "Annotations" / "img0_0.xml").read_text().replace("img0_0.png", "broken.png")
        )
        (root / "Annotations" / "zz.xml").write_text("<annotation><object>")
    if fmt == "yolo":
        (root / "labels" / "train" / "broken.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    if corrupt:
        (root / corrupt).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    if fmt == "coco":  # an image listed but missing on disk
        data = json.loads((root / "instances.json").read_text())
        data["images"].append({"id": 99, "file_name": "missing.png", "width": 96, "height": 96})
        (root / "instances.json").write_text(json.dumps(data))
    summary = importer.run(st, root, "d", fmt)
    assert summary.added == 12 and summary.duplicates == 0
    refused = {n for n, _ in summary.refused}
    expected = {
        "yolo": {"images/train/broken.png"},
        "voc": {"broken.xml", "zz.xml"},
        "coco": {"missing.png"},
    }
    assert refused == expected[fmt]
    assert "refused" in summary.line() and "added 12" in summary.line()
    boxes = _current(st)
    majority = Counter(majority_label([{"label": n} for n, _ in b]) for b in boxes.values())
    # at most 2 per majority class, at most a fifth of the class
    expected_golden = sum(min(2, n // 5) for n in majority.values())
    assert summary.golden == expected_golden >= 1
    with st.transaction() as s:
        c = datasets.counts(s, datasets.get(s, "d"))
    assert c["classes"] == CLASSES and c["samples"] == 12
    assert c["splits"]["golden"] == expected_golden
    again = importer.run(st, root, "d", fmt)
    assert (again.added, again.duplicates, again.relabelled) == (0, 12, 0)
    assert again.golden == 0 and _current(st) == boxes


def test_the_same_images_from_every_format_have_the_same_boxes(st: Store, tmp_path: Path) -> None:
    importer.run(st, yolo_folder(tmp_path / "y", 4), "y", "yolo")
    importer.run(st, voc_folder(tmp_path / "v", 4), "v", "voc")
    importer.run(st, coco_folder(tmp_path / "c", 4), "c", "coco")
    y, v, c = _current(st, "y"), _current(st, "v"), _current(st, "c")
    assert y == v == c and len(y) == 4


def test_relabelled_counts_a_changed_label_and_golden_import(st: Store, tmp_path: Path) -> None:
    root = yolo_folder(tmp_path / "y", 3)
    importer.run(st, root, "d", "yolo", golden=True)
    with st.transaction() as s:
        assert datasets.counts(s, datasets.get(s, "d"))["splits"]["golden"] == 3
    lbl = root / "labels" / "train" / "img0_0.txt"
    lbl.write_text("1 0.5 0.5 0.25 0.25\n")
    summary = importer.run(st, root, "d", "yolo")
    assert (summary.added, summary.duplicates, summary.relabelled) == (0, 2, 1)


def test_zip_import_and_zip_slip_is_refused(st: Store, tmp_path: Path) -> None:
    root = yolo_folder(tmp_path / "y", 3)
    shutil.rmtree(root / "src")
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        for p in root.rglob("*"):
            if p.is_file():
                zf.write(p, Path("neu") / p.relative_to(root))
    assert importer.run(st, good, "d", "yolo").added == 3
    before = state(st)
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("data.yaml", "path: .\ntrain: images\nnames: [a]\n")
        zf.writestr("../../escaped.png", png(1))
    with pytest.raises(InvalidInput, match="outside the archive root"):
        importer.run(st, evil, "d", "yolo")
    assert not (tmp_path / "escaped.png").exists()
    assert state(st) == before
    (tmp_path / "bad.zip").write_bytes(b"PK not a zip")
    with pytest.raises(InvalidInput, match="not a valid zip"):
        importer.run(st, tmp_path / "bad.zip", "d", "yolo")
    assert state(st) == before


def test_a_folder_without_annotations_is_refused(st: Store, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for fmt in ("yolo", "voc", "coco", "labelstudio"):
        with pytest.raises(InvalidInput):
            importer.run(st, tmp_path / "empty", "d", fmt)
    assert state(st) == (0, 0, 0)
