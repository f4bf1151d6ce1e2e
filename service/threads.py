"""OS-level names for the service's own threads (``top -H``, ``/proc/<pid>/task``).

Python names threads only inside the interpreter; the kernel sees every one of them as
``python``. Naming them lets an operator (and ``benchmarks/stream_bench.py``) tell the
inference, decode and event-loop threads apart without attaching a profiler.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from functools import lru_cache

_PR_SET_NAME = 15
_MAX_NAME = 15  # the kernel keeps 16 bytes, NUL included


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def name_os_thread(name: str | None = None) -> None:
    """Give the calling thread ``name`` (default: its Python name) at the OS level.

    Best effort: a no-op where ``prctl`` is unavailable; names are cut to 15 bytes."""
    libc = _libc()
    if libc is None:
        return
    raw = (name or threading.current_thread().name).encode("ascii", "replace")
    libc.prctl(_PR_SET_NAME, ctypes.c_char_p(raw[:_MAX_NAME]), 0, 0, 0)
