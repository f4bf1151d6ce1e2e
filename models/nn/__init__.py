"""Building blocks of the lineinspect detectors (T-model / S-model)."""

from models.nn.attention import DualAttention
from models.nn.conv import C3, Bottleneck, Conv
from models.nn.fusion import WeightedFusion
from models.nn.sppf import SPPF
from models.nn.swin import BlockS, SwinBlock, WindowAttention

__all__ = [
    "C3",
    "SPPF",
    "BlockS",
    "Bottleneck",
    "Conv",
    "DualAttention",
    "SwinBlock",
    "WeightedFusion",
    "WindowAttention",
]
