"""Content-addressed image files: ``<root>/blobs/ab/cd/<sha256>``, written atomically.

A blob is written to a temporary file in the same directory, flushed and fsynced, then
renamed into place, so a reader never sees half an image and a crash leaves at most a
``.tmp-*`` file that :meth:`BlobStore.sweep_temporary` removes. Blobs are immutable: the
same bytes always land at the same path, so writing twice is a no-op. A blob without a
sample row (the database commit failed after the write) is an orphan that
:meth:`BlobStore.orphans` finds; it is harmless and re-used by the next identical write.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def sha256_of(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def is_sha256(text: str) -> bool:
    """Whether ``text`` is a lowercase hex sha256."""
    return bool(_SHA256.match(text))


class BlobStore:
    """Image bytes under ``root/blobs``, addressed by their sha256."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "blobs"

    def path(self, sha256: str) -> Path:
        """Where the blob of ``sha256`` lives (whether or not it exists)."""
        if not is_sha256(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        """Whether the blob is on disk."""
        return self.path(sha256).is_file()

    def put(self, data: bytes) -> str:
        """Store ``data`` (atomic, idempotent) and return its sha256."""
        sha = sha256_of(data)
        dst = self.path(sha)
        if dst.is_file():
            return sha
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=dst.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, dst)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return sha

    def read(self, sha256: str) -> bytes:
        """The bytes of a blob; ``FileNotFoundError`` when absent."""
        return self.path(sha256).read_bytes()

    def delete(self, sha256: str) -> int:
        """Remove a blob; returns the bytes freed (0 when it was absent)."""
        p = self.path(sha256)
        try:
            size = p.stat().st_size
            p.unlink()
        except FileNotFoundError:
            return 0
        return size

    def all(self) -> Iterator[str]:
        """Every stored sha256."""
        if not self.root.is_dir():
            return
        for p in self.root.glob("*/*/*"):
            if is_sha256(p.name):
                yield p.name

    def orphans(self, known: set[str]) -> list[str]:
        """Blobs no sample references (``known`` = every referenced sha256)."""
        return sorted(s for s in self.all() if s not in known)

    def sweep_temporary(self) -> int:
        """Delete temporary files left by an interrupted write; returns how many."""
        n = 0
        if self.root.is_dir():
            for p in self.root.glob("*/*/.tmp-*"):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    n += 1
        return n

    def total_bytes(self) -> int:
        """Bytes used by all blobs."""
        return sum(self.path(s).stat().st_size for s in self.all())
