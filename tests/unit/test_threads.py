"""OS thread names (service/threads.py): what `top -H` and the stream benchmark read."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from service.threads import name_os_thread


def _comm(tid: int) -> str:
    return Path(f"/proc/self/task/{tid}/comm").read_text().strip()


def _comm_of(fn: object) -> str:
    out: dict[str, str] = {}

    def body() -> None:
        fn()  # type: ignore[operator]
        out["comm"] = _comm(threading.get_native_id())

    t = threading.Thread(target=body, name="py-name")
    t.start()
    t.join()
    return out["comm"]


def test_names_the_calling_thread() -> None:
    assert _comm_of(lambda: name_os_thread("infer-0")) == "infer-0"


def test_defaults_to_the_python_name_and_cuts_to_15_bytes() -> None:
    assert _comm_of(name_os_thread) == "py-name"
    assert _comm_of(lambda: name_os_thread("decode-with-a-very-long-name")) == "decode-with-a-v"


def test_executor_initializer_names_its_workers() -> None:
    with ThreadPoolExecutor(1, initializer=name_os_thread, initargs=("decode",)) as ex:
        assert _comm(ex.submit(threading.get_native_id).result()) == "decode"


def test_inference_threads_are_named() -> None:
    from tests.unit.test_batcher import GatedSession, make

    s = GatedSession()
    b = make(s, threads=2)
    try:
        names = sorted(_comm(t.native_id) for t in b._threads if t.native_id is not None)
        assert names == ["infer-0", "infer-1"]
    finally:
        s.gate.set()
        b.close()
