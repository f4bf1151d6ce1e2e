"""Import sources: a directory as is, or a .zip unpacked safely into a temporary one."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from service.errors import InvalidInput

#: Largest total uncompressed size accepted from one zip (bomb guard).
MAX_UNZIPPED_BYTES = 64 * 2**30


def check_members(zf: zipfile.ZipFile) -> None:
    """Refuse a zip with a member outside its root (absolute, ``..``, drive) or too big."""
    total = 0
    for info in zf.infolist():
        name = info.filename.replace("\\", "/")
        parts = PurePosixPath(name).parts
        if name.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
            raise InvalidInput(f"zip member {info.filename!r} points outside the archive root")
        total += info.file_size
    if total > MAX_UNZIPPED_BYTES:
        raise InvalidInput(f"zip unpacks to {total} bytes, over {MAX_UNZIPPED_BYTES}")


@contextmanager
def opened(path: Path) -> Iterator[Path]:
    """The directory to read: ``path`` itself, or a .zip unpacked (its single top-level
    folder when it has one); the unpacked copy is removed afterwards."""
    path = Path(path)
    if path.is_dir():
        yield path
        return
    if not path.is_file():
        raise InvalidInput(f"{path} does not exist")
    if path.suffix.lower() != ".zip":
        yield path  # a single annotation file (COCO or Label Studio JSON)
        return
    tmp = Path(tempfile.mkdtemp(prefix="lineinspect-import-"))
    try:
        try:
            with zipfile.ZipFile(path) as zf:
                check_members(zf)
                zf.extractall(tmp)
        except zipfile.BadZipFile as exc:
            raise InvalidInput(f"{path} is not a valid zip: {exc}") from exc
        entries = [p for p in tmp.iterdir() if p.name != "__MACOSX"]
        yield entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
