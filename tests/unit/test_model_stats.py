"""The v2 statistics accumulator: Triton's field names, nanoseconds, zeros where unused."""

from __future__ import annotations

from service.model_stats import ModelStats


def test_frames_and_executions_accumulate_per_version() -> None:
    st = ModelStats()
    st.execution(("m", 1), 2, 0.001, 0.010, 0.002)
    st.execution(("m", 1), 1, 0.001, 0.006, 0.001)
    for _ in range(3):
        st.success(("m", 1), 0.020, 0.003, 0.010, 0.001, 0.002)
    st.success(("m", 2), 0.030, 0.004, 0.012)  # a worker's record: no input/output times
    st.failure(("m", 1), 0.005)
    v1, v2, v3 = st.snapshot([("m", 1), ("m", 2), ("m", 3)])
    assert (v1["name"], v1["version"]) == ("m", "1")
    assert v1["inference_count"] == 3 and v1["execution_count"] == 2 and v1["last_inference"] > 0
    s = v1["inference_stats"]
    assert s["success"] == {"count": 3, "ns": 60_000_000}
    assert s["fail"] == {"count": 1, "ns": 5_000_000}
    assert s["queue"] == {"count": 3, "ns": 9_000_000}
    assert s["compute_input"] == {"count": 3, "ns": 3_000_000}
    assert s["cache_hit"] == {"count": 0, "ns": 0}
    assert [b["batch_size"] for b in v1["batch_stats"]] == [1, 2]
    assert v1["batch_stats"][1]["compute_infer"] == {"count": 1, "ns": 10_000_000}
    assert v2["inference_stats"]["compute_input"]["count"] == 0
    assert v2["inference_stats"]["compute_infer"] == {"count": 1, "ns": 12_000_000}
    assert v2["execution_count"] == 0 and v2["batch_stats"] == []
    assert v3["inference_count"] == 0 and v3["last_inference"] == 0  # registered, never used
