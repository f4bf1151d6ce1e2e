"""Training: options, trainer, EMA, LR schedule, checkpoints, torch-side prediction."""

from models.train.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from models.train.ema import ModelEMA
from models.train.options import TrainOptions
from models.train.predict import detect, raw_outputs
from models.train.schedule import lr_factor

__all__ = [
    "ModelEMA",
    "TrainOptions",
    "detect",
    "load_checkpoint",
    "lr_factor",
    "model_from_checkpoint",
    "raw_outputs",
    "save_checkpoint",
]
