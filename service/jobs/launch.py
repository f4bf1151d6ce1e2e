"""``python -m service.jobs.launch PARENT_PID NICE -- PROGRAM ARGS...``: the first step of
every child the jobs code starts. It asks Linux to SIGKILL it when its parent dies
(``prctl(PR_SET_PDEATHSIG)``), checks the parent is still the one that started it (it
may have died before the request took effect), lowers its priority, and ``exec``s
PROGRAM, which keeps both. Done here rather than in a ``preexec_fn`` because that runs
between ``fork`` and ``exec`` of a threaded process, where Python code is unsafe.

Note: Linux sends the signal when the *thread* that forked the child ends, so the
parent keeps the spawning thread alive for as long as the child runs.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> bool:
    """Request SIGKILL on parent death; False where the platform cannot."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)) == 0


def main(argv: list[str]) -> None:
    """Entry point; see the module docstring."""
    if len(argv) < 4 or argv[2] != "--":
        sys.exit("usage: python -m service.jobs.launch PARENT_PID NICE -- PROGRAM ARGS...")
    parent, nice, program = int(argv[0]), int(argv[1]), argv[3:]
    die_with_parent()
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
    if nice > 0:
        os.nice(nice)
    os.execv(program[0], program)


if __name__ == "__main__":
    main(sys.argv[1:])
