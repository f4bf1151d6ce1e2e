"""Client-given line/camera label values are cleaned where labels are bounded."""

from __future__ import annotations

from service.metrics import MAX_LABEL_CHARS, LabelBounder, Metrics, clean_label


def test_control_and_bidi_characters_are_stripped_and_length_capped() -> None:
    assert clean_label("L1") == "L1"
    assert clean_label("L\u202e1\u2066") == "L1"  # right-to-left override, isolate
    assert clean_label("c\x1b[31m3\x00\n") == "c[31m3"  # escape, NUL, newline
    assert clean_label("z\u200bw\ufeff") == "zw"  # zero-width space, BOM
    assert clean_label("Linie-Ä") == "Linie-Ä"
    assert len(clean_label("x" * 10_000)) == MAX_LABEL_CHARS


def test_the_bounder_exports_only_clean_values() -> None:
    bound = LabelBounder(None, max_values=3)
    assert [bound(v) for v in ("L1", "L\u202e1", "\u200b", None)] == [
        "L1",
        "L1",
        "unknown",
        "unknown",
    ]
    assert bound("L2\x07") == "L2" and bound("L3") == "L3" and bound("L4") == "other"


def test_metrics_exposition_has_no_control_characters() -> None:
    m = Metrics()
    m.observe_frame("L\u202e1\n", "c" * 500, "tiny", 1, "pass", [])
    text = m.exposition().decode()
    assert 'line="L1"' in text and "\u202e" not in text
    assert f'camera="{"c" * MAX_LABEL_CHARS}"' in text
