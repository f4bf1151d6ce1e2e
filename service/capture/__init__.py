"""Capture of the frames worth labelling from live traffic, after the answer.

The decision runs on the event loop in microseconds (:mod:`service.capture.samplers`,
in-process limits); the write goes through a bounded queue to one writer thread
(:mod:`service.capture.writer`). A full queue, a quota, a limit or a full disk drops the
capture and counts it; the answer is never delayed or dropped. See docs/data.md.
"""
