"""Training options: the validation carve-out seed, and the teacher/student data check."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
import torch

from models.cli import train
from models.distill.teacher import Teacher
from models.distill.trainer import check_teacher_data
from models.train.options import TrainOptions, carve_out_seed, default


def test_split_seed_defaults_to_seed() -> None:
    assert carve_out_seed(TrainOptions(data="d.yaml", seed=3).to_dict()) == 3
    assert carve_out_seed(TrainOptions(data="d.yaml", seed=3, split_seed=0).to_dict()) == 0


def test_carve_out_seed_of_stored_options() -> None:
    assert carve_out_seed({"seed": 2}) == 2  # a checkpoint from before split_seed
    assert carve_out_seed({"seed": 2, "split_seed": None}) == 2
    assert carve_out_seed({"seed": 2, "split_seed": 0}) == 0
    assert carve_out_seed(TrainOptions(data="d", seed=1, split_seed=5).to_dict()) == 5


def test_teacher_trained_on_other_samples_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    def teacher(fp: str | None) -> Teacher:
        return Teacher(torch.nn.Identity(), {}, ["a"], 64, fp)  # type: ignore[arg-type]

    with caplog.at_level(logging.WARNING):
        assert check_teacher_data(teacher("abc"), "abc")
        assert check_teacher_data(teacher(None), "abc")  # unknown: nothing to compare
        assert not caplog.records
        assert not check_teacher_data(teacher("abc"), "xyz")
    assert "validation carve-out" in caplog.text and "--split-seed" in caplog.text


def test_cli_options_are_generated_from_train_options(tmp_path: Path) -> None:
    data = tmp_path / "data.yaml"
    data.write_text("names: [a]\n")
    args = ["--data", str(data), "--out", str(tmp_path / "run"), "--mosaic", "0.5"]
    ctx = train.make_context("train", [*args, "--no-adaptive", "--split-seed", "3"])
    opts = TrainOptions.from_cli(ctx.params)
    assert (opts.mosaic_prob, opts.adaptive_weights, opts.split_seed) == (0.5, False, 3)
    assert opts.epochs == default("epochs") == 100 and opts.head == "anchor_based"
    defaults = TrainOptions.from_cli(train.make_context("train", args).params)
    assert defaults.adaptive_weights and defaults.split_seed is None and defaults.init_from == ""
    cli_fields = {f.name for f in dataclasses.fields(TrainOptions) if "cli" in f.metadata}
    assert set(defaults.to_dict()) - cli_fields == {
        "final_lr_ratio",
        "augment",
        "ema_decay",
        "cache",
        "max_iters_per_epoch",
    }
