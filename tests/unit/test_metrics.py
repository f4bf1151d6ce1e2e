"""Label bounding and exposition."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from service.metrics import OTHER, LabelBounder, Metrics


def test_label_bounder_allow_list_and_cap() -> None:
    allow = LabelBounder(["L1", "L2"], 10)
    assert allow("L1") == "L1" and allow("L9") == OTHER and allow(None) == "unknown"
    capped = LabelBounder(None, 2)
    assert [capped(v) for v in ["a", "b", "c", "a"]] == ["a", "b", OTHER, "a"]


def test_cardinality_bounded_in_exposition() -> None:
    m = Metrics(lines=None, cameras=None, max_label_values=3)
    for i in range(50):
        m.observe_frame(f"line{i}", f"cam{i}", "steel", 1, "fail", ["scratches"])
    fams = {f.name: f for f in text_string_to_metric_families(m.exposition().decode())}
    lines = {
        s.labels["line"] for s in fams["lineinspect_frames"].samples if s.name.endswith("_total")
    }
    assert lines == {"line0", "line1", "line2", OTHER}
