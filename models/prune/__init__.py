"""Compression for edge boxes (issue 20, the pruning paper): BN-slimming sparse
training, global channel pruning and layer pruning through torch-pruning's dependency
graph, response-KD fine-tuning, export. Entry point: :func:`run_prune`
(``lineinspect prune``, and a ``prune`` job of a training worker). docs/compression.md."""

from models.prune.pipeline import PRUNING_FIELDS, PruneOptions, run_prune

__all__ = ["PRUNING_FIELDS", "PruneOptions", "run_prune"]
