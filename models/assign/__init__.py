"""Label assignment: task-aligned (anchor-free, default) and YOLOv5 ratio matching."""

from models.assign.tal import Assignment, TaskAlignedAssigner
from models.assign.yolov5 import AnchorAssigner, LevelTargets

__all__ = ["AnchorAssigner", "Assignment", "LevelTargets", "TaskAlignedAssigner"]
