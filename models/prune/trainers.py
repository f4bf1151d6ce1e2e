"""The two training stages of the pipeline, as hooks on the existing trainers.

* :class:`SparseTrainer`: ordinary training (warm-started from the source model) plus
  torch-pruning's L1 term on the prunable BatchNorm scales, applied between
  ``backward()`` and ``optimizer.step()`` with a constant rate lambda (paper eq. 11); each
  ``results.jsonl`` line carries the |gamma| histogram.
* :class:`FinetuneTrainer`: the distillation trainer (response KD of models/distill:
  soft class/objectness targets and the teacher-bounded box loss, eq. 12-17) on the
  pruned student; its checkpoints carry the pruning record for the card.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from models.distill.trainer import DistillTrainer
from models.prune.channels import gamma_histogram
from models.prune.graph import build_pruner, prunable_bns
from models.train.trainer import Trainer

Progress = Callable[[str, float, dict[str, Any]], None]


class SparseTrainer(Trainer):
    """Trainer with the BN-scale sparsity regulariser (``reg`` = lambda)."""

    def __init__(self, opts: Any, reg: float, progress: Progress | None = None, **kw: Any):
        self.reg, self.progress = reg, progress
        super().__init__(opts, **kw)

    def build_extra(self) -> list[nn.Module]:
        """Trace the dependency graph once; the pruner's groups decide which scales count."""
        self.pruner = build_pruner(self.model, self.opts.imgsz, reg=self.reg)
        self.bns = prunable_bns(self.pruner)
        return []

    def after_backward(self) -> None:
        """``grad(gamma) += lambda * sign(gamma)`` on the prunable BatchNorms (torch-pruning)."""
        self.pruner.regularize(self.model)

    def end_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        """The |gamma| histogram of this epoch (the raw weights, which the term acts on)."""
        self.pruner.update_regularizer()
        record["gamma"] = gamma_histogram(self.bns)
        record["sparsity_lambda"] = self.reg
        if self.progress:
            self.progress("sparse", (epoch + 1) / self.opts.epochs, record)


class FinetuneTrainer(DistillTrainer):
    """Response-KD fine-tuning of a pruned student; checkpoints keep ``pruning``."""

    def __init__(
        self,
        opts: Any,
        teacher: Any,
        distill: Any,
        pruning: dict[str, Any],
        progress: Progress | None = None,
        **kw: Any,
    ) -> None:
        self.pruning, self.progress = pruning, progress
        super().__init__(opts, teacher, distill, **kw)

    def end_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        """Report progress."""
        if self.progress:
            self.progress("finetune", (epoch + 1) / self.opts.epochs, record)

    def state(self, epoch: int) -> dict[str, Any]:
        """The distillation state plus the pruning record (source, R, K, lambda, sizes)."""
        st = super().state(epoch)
        st["pruning"] = dict(self.pruning, teacher=dict(self.teacher.parent))
        return st
