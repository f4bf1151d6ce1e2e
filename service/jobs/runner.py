"""A child process that dies with its parent and is stopped as a whole.

The child runs in its own process group (its data-loader workers too), so stopping it
signals them all: SIGTERM, then SIGKILL after a grace period. Its stdout and stderr are
appended to a log file, so a resumed job's log holds every attempt.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def launch_argv(program: Sequence[str], nice: int) -> list[str]:
    """``program`` behind the launcher (:mod:`service.jobs.launch`)."""
    return [
        sys.executable,
        "-m",
        "service.jobs.launch",
        str(os.getpid()),
        str(nice),
        "--",
        *program,
    ]


class Child:
    """One child process; ``program[0]`` is an executable path."""

    def __init__(
        self,
        program: Sequence[str],
        env: Mapping[str, str],
        log_path: Path | None,
        nice: int = 0,
        cwd: Path | None = None,
    ) -> None:
        self._log = log_path.open("ab") if log_path is not None else None
        self.proc = subprocess.Popen(
            launch_argv(program, nice),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log else None,
            start_new_session=True,
            close_fds=True,
        )
        self.pid = self.proc.pid  # the launcher execs: this is the program's pid

    def poll(self) -> int | None:
        """Exit status, or None while running."""
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit status."""
        return self.proc.wait(timeout)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def stop(self, grace_s: float) -> int:
        """SIGTERM to the group, SIGKILL after ``grace_s``; returns the exit status."""
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                log.warning("child %d ignored SIGTERM for %.0fs; killing it", self.pid, grace_s)
        self._signal_group(signal.SIGKILL)  # stragglers of the group, e.g. loader workers
        rc = self.proc.wait()
        self.close()
        return rc

    def close(self) -> None:
        """Close the log file handle."""
        if self._log is not None:
            self._log.close()
            self._log = None
