"""``lineinspect data import``: a folder or zip of annotations into a dataset.

Each image commits on its own (a sample and its labels together), so a bad file is
refused alone and an interrupted import keeps what it finished; re-running it is a
no-op for those (deduped by sha256, counted as duplicates).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from service.errors import InvalidInput, LineInspectError
from service.store import archive, datasets, intake, labelstudio, readers
from service.store.schema import Dataset, Label, Sample
from service.store.splits import pick_golden
from service.store.store import Store

log = logging.getLogger(__name__)

FORMATS = ("yolo", "voc", "coco", "labelstudio")


@dataclass
class Summary:
    """What an import did."""

    added: int = 0
    duplicates: int = 0
    relabelled: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    golden: int = 0

    def line(self) -> str:
        """The one-line summary."""
        text = (
            f"added {self.added}, duplicates {self.duplicates}, relabelled {self.relabelled}, "
            f"refused {len(self.refused)}"
        )
        if self.refused:
            shown = "; ".join(f"{n}: {why}" for n, why in self.refused[:5])
            more = f"; and {len(self.refused) - 5} more" if len(self.refused) > 5 else ""
            text += f" ({shown}{more})"
        if self.golden:
            text += f"; golden set frozen with {self.golden} images"
        return text


def run(
    store: Store,
    path: Path,
    dataset: str,
    fmt: str,
    golden: bool = False,
    add_classes: bool = False,
    author: str = "import",
    progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """Import ``path`` (folder, annotation file or .zip) into ``dataset``.

    The dataset is created with the source's class list when it does not exist. Raises
    :class:`~service.errors.InvalidInput` for a source that cannot be read at all.
    """
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {list(FORMATS)}, got {fmt!r}")
    summary = Summary()
    with archive.opened(Path(path)) as root:
        if fmt == "labelstudio":
            source = labelstudio.read_export(root, store)
        else:
            source = readers.READERS[fmt](root)
        with store.transaction() as s:
            ds, _ = datasets.get_or_create(s, dataset, source.classes, store.val_fraction)
            first_import = not ds.golden_frozen
            if golden:
                ds.golden_frozen = True
            ds_id = ds.id
        added: list[str] = []
        total = len(source.candidates)
        for n, cand in enumerate(source.candidates, start=1):
            try:
                item = cand.load()
                item.golden = golden
                item.author = item.author if item.author != "import" else author
                with store.transaction() as s:
                    ds = s.get_one(Dataset, ds_id)
                    sample, outcome = intake.take(
                        s, store.blobs, ds, item, store.max_pixels, add_classes
                    )
                    if outcome == "added":
                        added.append(sample.sha256)
                if outcome == "added":
                    summary.added += 1
                elif outcome == "relabelled":
                    summary.relabelled += 1
                else:
                    summary.duplicates += 1
            except (LineInspectError, ValueError, OSError) as exc:
                reason = exc.message if isinstance(exc, LineInspectError) else str(exc)
                summary.refused.append((cand.name, reason))
                log.debug("refused %s: %s", cand.name, reason)
            if progress is not None:
                progress(n, total)
    if first_import and not golden and added:  # golden_per_class 0: frozen empty
        summary.golden = freeze_golden(store, ds_id, added)
    return summary


def freeze_golden(store: Store, ds_id: int, shas: list[str]) -> int:
    """Freeze the golden set from ``golden_per_class`` labelled images per class among
    ``shas`` (the first import); returns how many."""
    with store.transaction() as s:
        ds = s.get_one(Dataset, ds_id)
        if ds.golden_frozen:
            return 0
        rows = s.execute(
            select(Sample, Label.boxes)
            .join(Label, (Label.sample_id == Sample.id) & (Label.version == Sample.label_version))
            .where(Sample.dataset_id == ds_id, Sample.state.in_(("labelled", "ok")))
        ).all()
        wanted = set(shas)
        candidates = [(smp.sha256, boxes) for smp, boxes in rows if smp.sha256 in wanted]
        chosen = pick_golden(candidates, store.golden_per_class)
        for smp, _ in rows:
            if smp.sha256 in chosen:
                smp.golden = True
        ds.golden_frozen = True
        return len(chosen)
