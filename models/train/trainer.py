"""The training loop: AdamW + warm-up/cosine, EMA, AMP on CUDA, adaptive loss weights
(eq. 18), periodic evaluation through the shared post-processing, exact resume, and
data-parallel training under ``torchrun`` (models/train/distributed.py)."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from models.anchors import sample_anchors
from models.data import DetectionDataset, Sample, build_loader, fingerprint, load_splits
from models.detectors import Detector, build_detector, count_params
from models.detectors.lidd import LIDDNet, is_lidd
from models.evaluate import evaluation_report, load_eval_images
from models.losses import LOSS_NAMES, AdaptiveLossWeights, DetectionLoss
from models.losses.gfl import GFLLoss
from models.processing import DEFAULT_IOU_THRESHOLD
from models.registry import BUNDLED_ROOT
from models.train import distributed
from models.train.checkpoint import (
    build_from_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    structure_of,
    warm_start,
)
from models.train.ema import ModelEMA
from models.train.options import TrainOptions, carve_out_seed
from models.train.predict import detect
from models.train.schedule import lr_factor

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases, norms, 1-D params, position-bias tables, fusion weights."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name.endswith("bias_table") or name.endswith(".weights"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


class Trainer:
    """One training run. ``samples``/``class_names`` may be given directly (tests); otherwise
    they come from ``opts.data`` with a seeded per-class validation carve-out."""

    def __init__(
        self,
        opts: TrainOptions,
        train_samples: Sequence[Sample] | None = None,
        val_samples: Sequence[Sample] | None = None,
        class_names: Sequence[str] | None = None,
        *,
        registry_root: Path = BUNDLED_ROOT,
    ) -> None:
        self.opts = opts
        self.out = Path(opts.out)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(max(1, opts.threads))
        seed_everything(opts.seed)
        self.dist = distributed.init_distributed(opts.device)
        self.device = distributed.resolve_device(opts.device, self.dist)
        if train_samples is None:
            train_samples, val_samples, class_names = load_splits(
                opts.data, opts.val_fraction, carve_out_seed(opts.to_dict())
            )
        assert class_names is not None
        self.train_samples, self.val_samples = list(train_samples), list(val_samples or [])
        self.class_names = list(class_names)
        self.fingerprint = fingerprint(self.train_samples)
        self.dataset = DetectionDataset(
            self.train_samples,
            opts.imgsz,
            augment=opts.augment,
            mosaic_prob=opts.mosaic_prob,
            cache=opts.cache,
            close_mosaic=opts.close_mosaic,
            seed=opts.seed,
        )
        last = self.out / "last.pt"
        resume_ck = load_checkpoint(last) if opts.resume and last.exists() else None
        self.init_from: dict[str, Any] | None = None
        if resume_ck is not None:
            self.init_from = resume_ck.get("init_from")
            self.model: Detector = self._build_model(resume_ck)
        elif opts.init_from:
            self.model, self.init_from = warm_start(
                opts.init_from,
                self.class_names,
                opts.arch,
                opts.head,
                opts.data,
                self.fingerprint,
                registry_root,
            )
        else:
            self.model = self._build_model(None)
        self.model.to(self.device)
        self.spec = self.model.spec(self.class_names, opts.imgsz)
        self.criterion: Any
        self.loss_names: tuple[str, ...]
        if isinstance(self.model, LIDDNet):  # GFL heads: their own loss and assignment
            self.criterion, self.loss_names = GFLLoss.for_model(self.model), GFLLoss.names
        else:
            self.criterion = DetectionLoss(
                self.model.strides, len(self.class_names), opts.head, self.model.anchors
            )
            self.loss_names = LOSS_NAMES
        self.extra = nn.ModuleList(self.build_extra())  # hook: e.g. the distiller's adapters
        self.optimizer = torch.optim.AdamW(
            param_groups(nn.ModuleList([self.model, self.extra]), opts.weight_decay),
            lr=opts.lr,
            betas=(0.9, 0.999),
        )
        self.ema = ModelEMA(self.model, opts.ema_decay)
        self.amp = self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.weights = AdaptiveLossWeights(self.loss_names, enabled=opts.adaptive_weights)
        self.start_epoch, self.step = 0, 0
        self.best_map50, self.best_metrics = -1.0, None
        self.last_metrics: dict[str, Any] | None = None
        self._val_images: tuple[list[np.ndarray], list[tuple[int, int]]] | None = None
        if resume_ck is not None:
            self._resume(resume_ck, last)
        # What the forward pass runs: the model, or the model in DDP under torchrun.
        self.net = distributed.wrap(self.model, self.dist, self.device)

    # ----------------------------------------------------------------- state
    def state(self, epoch: int) -> dict[str, Any]:
        """Everything needed to resume after ``epoch`` (0-based, completed)."""
        return {
            "epoch": epoch,
            "step": self.step,
            "model": self.model.state_dict(),
            "extra": self.extra.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "loss_weights": self.weights.state_dict(),
            "best_map50": self.best_map50,
            "best_metrics": self.best_metrics,
            "metrics": self.last_metrics,
            "rng": rng_state(),
            "opts": self.opts.to_dict(),
            "model_args": self.model.build_args(),
            "class_names": self.class_names,
            "imgsz": self.opts.imgsz,
            "spec": self.spec.to_json(),
            "data_fingerprint": self.fingerprint,
            "params": count_params(self.model),
            "init_from": self.init_from,
            "structure": structure_of(self.model),  # None unless pruned (models/prune)
        }

    def _build_model(self, resume_ck: dict[str, Any] | None) -> Detector:
        """The detector: from the checkpoint's own description when resuming (so a resume
        never depends on the current variant table), else from ``opts``."""
        o = self.opts
        if resume_ck is not None:
            return build_from_checkpoint(resume_ck)  # its own (possibly pruned) structure
        anchors = self.new_anchors() if o.head == "anchor_based" and not is_lidd(o.arch) else None
        return build_detector(o.arch, len(self.class_names), o.head, anchors)

    def new_anchors(self) -> list[list[list[float]]]:
        """Anchors of a new anchor-based model: k-means over the training boxes, seeded by
        the carve-out seed — a property of the data split, not of the training seed, so
        runs that differ only in ``seed`` share them (k-means++ lands in different local
        optima per seed)."""
        seed = carve_out_seed(self.opts.to_dict())
        return sample_anchors(self.train_samples, self.opts.imgsz, 3, seed=seed)

    def _resume(self, ck: dict[str, Any], path: Path) -> None:
        self.model.load_state_dict(ck["model"])
        if ck.get("extra"):
            self.extra.load_state_dict(ck["extra"])
        self.ema.load_state_dict(ck["ema"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scaler.load_state_dict(ck["scaler"])
        self.weights.load_state_dict(ck["loss_weights"])
        self.best_map50, self.best_metrics = ck["best_map50"], ck["best_metrics"]
        self.last_metrics = ck.get("metrics")
        self.start_epoch, self.step = ck["epoch"] + 1, ck["step"]
        set_rng_state(ck["rng"])
        log.info("resumed from %s at epoch %d (step %d)", path, self.start_epoch, self.step)

    # ----------------------------------------------------------------- hooks
    def build_extra(self) -> list[nn.Module]:
        """Hook, called once before the optimiser exists: training-only modules trained and
        checkpointed with the model (e.g. distillation adapters); may extend ``loss_names``."""
        return []

    def after_backward(self) -> None:
        """Hook between ``backward()`` and ``optimizer.step()`` (gradients unscaled, before
        clipping): e.g. the sparsity regulariser of models/prune."""

    def end_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        """Hook after each epoch, before ``record`` goes into ``results.jsonl`` (may add
        fields, e.g. the BatchNorm scale histogram of sparse training)."""

    def compute_loss(
        self, images: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Hook: forward and loss of one batch → ``(loss, parts)``, a part per ``loss_names``."""
        with torch.autocast(self.device.type, enabled=self.amp):
            outs = self.net(images)
        return self.criterion([x.float() for x in outs], targets, self.weights.weights)

    # ------------------------------------------------------------------ loop
    def iters_per_epoch(self, loader_len: int) -> int:
        """Optimizer steps per epoch."""
        m = self.opts.max_iters_per_epoch
        return min(loader_len, m) if m > 0 else loader_len

    def train_loader(self, workers: int) -> DataLoader[Any]:
        """The epoch-seeded shuffled loader of the training set (exact resume: the order
        depends on (seed, epoch) only); the last partial batch is dropped when there is
        more than one batch."""
        o = self.opts
        d = self.dist
        share = None
        if d.enabled:  # this process's share of each epoch; set_epoch() in fit()
            share = DistributedSampler(self.dataset, d.world, d.rank, shuffle=True, seed=o.seed)
        return build_loader(
            self.dataset,
            o.batch,
            shuffle=True,
            workers=workers,
            seed=o.seed,
            drop_last=(len(share) if share else len(self.dataset)) > o.batch,
            sampler=share,
        )

    def fit(self) -> dict[str, Any]:
        """Train to ``opts.epochs``; returns the best metrics seen."""
        o = self.opts
        loader = self.train_loader(o.workers)
        ipe = self.iters_per_epoch(len(loader))
        total, warmup = o.epochs * ipe, int(o.warmup_epochs * ipe)
        main = self.dist.main
        log.info(
            "training %s (%d params) on %d images, %d val, %d it/epoch, device %s",
            o.arch,
            count_params(self.model),
            len(self.train_samples),
            len(self.val_samples),
            ipe,
            self.device,
        )
        for epoch in range(self.start_epoch, o.epochs):
            closing = epoch >= o.epochs - o.close_mosaic
            self.dataset.set_epoch(epoch, o.epochs)
            if isinstance(loader.sampler, DistributedSampler):
                loader.sampler.set_epoch(epoch)
            t0 = time.time()
            means = self._train_epoch(loader, epoch, ipe, total, warmup)
            means = distributed.average(means, self.dist, self.device)  # same on every rank
            self.weights.update(means)
            record: dict[str, Any] = {"epoch": epoch + 1, "time_s": round(time.time() - t0, 1)}
            record.update({f"loss_{k}": round(v, 5) for k, v in means.items()})
            record["loss_weights"] = {k: round(v, 3) for k, v in self.weights.weights.items()}
            last = epoch + 1 == o.epochs
            interval = max(1, o.eval_interval // 2) if closing else o.eval_interval
            if main and self.val_samples and (last or (epoch + 1) % interval == 0):
                self.last_metrics = self.evaluate()
                self.last_metrics["epoch"] = epoch + 1
                record.update(
                    map50=self.last_metrics["map50"], map50_95=self.last_metrics["map50_95"]
                )
                if self.last_metrics["map50"] > self.best_map50:
                    self.best_map50, self.best_metrics = (
                        self.last_metrics["map50"],
                        self.last_metrics,
                    )
                    save_checkpoint(self.out / "best.pt", self.state(epoch))
            self.end_epoch(epoch, record)
            if not main:
                continue
            save_checkpoint(self.out / "last.pt", self.state(epoch))
            with open(self.out / "results.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            log.info("epoch %d: %s", epoch + 1, record)
        distributed.check_replicas_agree(self.model, self.dist, self.device)
        if main and not (self.out / "best.pt").exists() and (self.out / "last.pt").exists():
            save_checkpoint(self.out / "best.pt", load_checkpoint(self.out / "last.pt"))
        distributed.barrier(self.dist)  # rank 0's files are complete for every rank
        return self.best_metrics or {}

    def _train_epoch(
        self, loader: Any, epoch: int, ipe: int, total: int, warmup: int
    ) -> dict[str, float]:
        o = self.opts
        self.net.train()
        sums = dict.fromkeys(self.loss_names, 0.0)
        n = 0
        pbar = tqdm(
            total=ipe,
            desc=f"epoch {epoch + 1}/{o.epochs}",
            mininterval=2.0,
            dynamic_ncols=True,
            leave=True,
            disable=not self.dist.main,
        )
        for i, batch in enumerate(loader):
            if i >= ipe:
                break
            images, targets = batch[0], batch[1]
            if images.shape[0] < 2:  # BatchNorm on pooled attention maps needs > 1 sample
                continue
            f = lr_factor(self.step, total, warmup, o.final_lr_ratio)
            for g in self.optimizer.param_groups:
                g["lr"] = o.lr * f
            images = images.to(self.device, non_blocking=True).float()
            targets = targets.to(self.device)
            loss, parts = self.compute_loss(images, targets)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()  # DDP averages the model's gradients
            distributed.average_gradients(self.extra.parameters(), self.dist)
            self.scaler.unscale_(self.optimizer)
            self.after_backward()
            params = [*self.model.parameters(), *self.extra.parameters()]
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.ema.update(self.model)
            self.step += 1
            n += 1
            for k in self.loss_names:
                sums[k] += float(parts[k])
            post = {k: f"{sums[k] / n:.3f}" for k in self.loss_names}
            pbar.set_postfix(post | {"lr": f"{o.lr * f:.2e}"})
            pbar.update(1)
        pbar.close()
        return {k: v / max(n, 1) for k, v in sums.items()}

    # ------------------------------------------------------------------ eval
    def evaluate(self, model: nn.Module | None = None) -> dict[str, Any]:
        """mAP of the EMA model on the validation carve-out, through ``postprocess``."""
        if self._val_images is None:
            self._val_images = load_eval_images(self.val_samples, self.spec.imgsz)
        m = model or self.ema.ema
        images, sizes = self._val_images
        dets = detect(m, self.spec, images, conf_thr=0.001, orig_sizes=sizes)
        res = evaluation_report(self.val_samples, dets, self.class_names)
        res["nms_iou"] = DEFAULT_IOU_THRESHOLD
        return res
