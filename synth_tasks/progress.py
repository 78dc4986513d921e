"""Steady progress lines for long stages, so a user watching the task log sees the run move."""

from __future__ import annotations

import logging
import time


class Progress:
    def __init__(self, label: str, total: int, logger: logging.Logger, every_s: float = 15.0,
                 clock=time.monotonic):
        self.label, self.total, self.logger, self.every_s, self.clock = label, total, logger, every_s, clock
        self.done = self.errors = self.tokens = 0
        self.started = self._last = clock()

    def update(self, *, tokens: int = 0, error: bool = False) -> None:
        self.done += 1
        self.tokens += tokens
        self.errors += int(error)
        now = self.clock()
        if now - self._last >= self.every_s or self.done == self.total:
            self._last = now
            self.logger.info(self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = max((now if now is not None else self.clock()) - self.started, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta_txt = "?" if eta == float("inf") else f"{int(eta // 60)}m{int(eta % 60):02d}s"
        return (
            f"{self.label}: {self.done}/{self.total} ({pct:.0f}%), {self.tokens / elapsed:.1f} tok/s, "
            f"{self.errors} errors, elapsed {elapsed:.0f}s, ETA {eta_txt}"
        )
