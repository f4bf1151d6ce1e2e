"""What a ``pipeline`` job asks for, and the triggers that submit one (settings
``triggers``). Plain pydantic: the settings class imports this module.

A pipeline's ``params`` stay flat (the job table's parameter rules): the keys below,
plus ``teacher_<option>`` and ``student_<option>`` for any other option of the teacher's
``lineinspect train`` and the student's ``lineinspect distil`` / ``train`` (for example
``student_imgsz: 320``, ``teacher_batch: 16``).
"""

from __future__ import annotations

from typing import Any, Literal

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Scalar = str | int | float | bool
#: The steps of a pipeline, in order; ``teacher`` is left out when no teacher is trained
#: (``teacher: ref`` or ``student: train``), ``evaluate`` when ``evaluate`` is false.
STEPS = ("snapshot", "teacher", "student", "evaluate", "export", "gate", "register", "policy")
#: Step options a pipeline sets itself (from the snapshot and the previous steps).
DERIVED = frozenset({"data", "teacher", "registry"})
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class PipelineSpec(BaseModel):
    """The parameters of a ``pipeline`` job, with their defaults."""

    model_config = ConfigDict(extra="allow")

    lineage: str = Field(
        pattern=_NAME, description="Registry model name the student is registered as."
    )
    dataset: str = Field(pattern=_NAME, description="Data store dataset; the whole snapshot.")
    teacher: Literal["train", "ref"] = Field(
        "train", description="train: train a teacher on the snapshot; ref: use teacher_ref."
    )
    teacher_ref: str | None = Field(
        None, description="Teacher of teacher: ref (a registry ref or a .pt checkpoint)."
    )
    teacher_arch: str = "t-model"
    teacher_epochs: int = Field(30, ge=1)
    student: Literal["distil", "train"] = Field(
        "distil", description="distil from the teacher, or train the student alone."
    )
    student_arch: str = "s-model"
    student_epochs: int = Field(30, ge=1)
    evaluate: bool = Field(True, description="Run `lineinspect val` on the snapshot's val split.")
    latency_runs: int = Field(20, ge=1, le=1000, description="Timed runs per gate latency.")

    @model_validator(mode="after")
    def _teacher_given(self) -> PipelineSpec:
        if self.student == "distil" and self.teacher == "ref" and not self.teacher_ref:
            raise ValueError("teacher: ref needs teacher_ref (a registry ref or a checkpoint)")
        for key in self.options("teacher") | self.options("student"):
            if key in DERIVED:
                raise ValueError(f"'{key}' is set by the pipeline, not by its parameters")
        return self

    @property
    def trains_teacher(self) -> bool:
        """Whether the pipeline trains a teacher of its own."""
        return self.student == "distil" and self.teacher == "train"

    def options(self, role: Literal["teacher", "student"]) -> dict[str, Any]:
        """The training-CLI options of the teacher's or the student's run."""
        prefix = role + "_"
        skip = {"teacher_ref"}
        extra = self.model_extra or {}
        fields = {k: getattr(self, k) for k in type(self).model_fields}
        out = {
            k[len(prefix) :]: v
            for k, v in {**fields, **extra}.items()
            if k.startswith(prefix) and k not in skip and v is not None
        }
        return out

    def steps(self) -> list[str]:
        """The names of the steps this pipeline runs, in order."""
        out = [s for s in STEPS if s != "teacher" or self.trains_teacher]
        return [s for s in out if s != "evaluate" or self.evaluate]


class TriggerSpec(BaseModel):
    """When the training worker submits a pipeline for a lineage (settings ``triggers``,
    keyed by lineage). Labels trigger when both label conditions hold; ``cron`` fires on
    its schedule; either way the debounce and interval rules apply, and a lineage never
    has two pipelines queued or running."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(pattern=_NAME, description="Data store dataset the pipeline trains on.")
    min_new_labels: int | None = Field(
        100,
        ge=1,
        description="Fire after this many samples newly labelled (or relabelled) since the "
        "dataset's last snapshot; None: labels never trigger.",
    )
    min_per_class: int = Field(
        0, ge=0, description="...and at least this many of them containing each class."
    )
    cron: str | None = Field(
        None,
        description="Also fire on this cron schedule (croniter syntax, UTC), e.g. '0 3 * * *'.",
    )
    debounce_s: float = Field(
        60.0,
        ge=0,
        description="Fire only once no new label arrived for this long (a batch import "
        "ends first).",
    )
    min_interval_s: float = Field(
        300.0, ge=0, description="Least time between two pipelines of the lineage (any trigger)."
    )
    pipeline: dict[str, Scalar | list[Scalar]] = Field(
        default_factory=dict,
        description="Parameters of the pipelines it submits (lineage and dataset are filled in).",
    )

    @field_validator("cron")
    @classmethod
    def _cron_valid(cls, v: str | None) -> str | None:
        if v is not None and not croniter.is_valid(v):
            raise ValueError(f"not a valid cron expression: {v!r}")
        return v

    @model_validator(mode="after")
    def _fires_somehow(self) -> TriggerSpec:
        if self.min_new_labels is None and self.cron is None:
            raise ValueError("a trigger needs min_new_labels or cron")
        self.params("lineage")  # its pipeline parameters are checked with the settings
        return self

    def params(self, lineage: str) -> dict[str, Scalar | list[Scalar]]:
        """The pipeline parameters this trigger submits for ``lineage`` (validated)."""
        params: dict[str, Scalar | list[Scalar]] = {
            **self.pipeline,
            "lineage": lineage,
            "dataset": self.dataset,
        }
        PipelineSpec.model_validate(params)
        return params
