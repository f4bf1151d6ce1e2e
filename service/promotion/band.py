"""The rollback monitor's arithmetic: a fixed-size window of verdicts with O(1) updates,
and the band a promoted version's fail rate must stay in."""

from __future__ import annotations


class Window:
    """The last ``size`` verdicts (True = fail) of one version on one line."""

    __slots__ = ("_next", "_ring", "count", "fails", "seen", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._ring = bytearray(size)
        self._next = 0
        self.count = 0  # verdicts in the window (at most size)
        self.fails = 0  # failed verdicts in the window
        self.seen = 0  # verdicts ever added

    def add(self, failed: bool) -> bool:
        """Count one verdict; True exactly when this one filled the window the first time."""
        bit = 1 if failed else 0
        if self.count == self.size:
            self.fails -= self._ring[self._next]
        else:
            self.count += 1
        self._ring[self._next] = bit
        self.fails += bit
        self._next = (self._next + 1) % self.size
        self.seen += 1
        return self.seen == self.size

    @property
    def full(self) -> bool:
        """Whether ``size`` verdicts were seen."""
        return self.count == self.size

    @property
    def fail_rate(self) -> float:
        """Share of failed verdicts in the window (0 when empty)."""
        return self.fails / self.count if self.count else 0.0


def leaves_band(baseline: float, rate: float, band: float) -> bool:
    """Whether ``rate`` is outside ``baseline ± band`` (the edges are inside)."""
    return abs(rate - baseline) > band + 1e-12


def error_rate_too_high(errors: int, requests: int, bound: float) -> bool:
    """Whether ``errors`` of ``requests`` is above ``bound`` (no requests: never)."""
    return requests > 0 and errors / requests > bound
