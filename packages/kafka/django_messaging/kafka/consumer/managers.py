"""Book-keeping of paused partitions and retry attempts of one consumer."""

from __future__ import annotations

import time
from dataclasses import dataclass

TP = tuple[str, int]


@dataclass
class Pause:
    offset: int
    until: float  # time.monotonic()


class PauseManager:
    """Partitions paused at an offset until a moment."""

    def __init__(self) -> None:
        self._pauses: dict[TP, Pause] = {}

    def set(self, topic: str, partition: int, offset: int, seconds: float) -> None:
        self._pauses[(topic, partition)] = Pause(offset, time.monotonic() + max(0.0, seconds))

    def pop_ready(self) -> list[tuple[TP, Pause]]:
        if not self._pauses:
            return []
        now = time.monotonic()
        ready = [(tp, p) for tp, p in self._pauses.items() if p.until <= now]
        for tp, _ in ready:
            del self._pauses[tp]
        return ready

    def next_due(self) -> float | None:
        return min((p.until for p in self._pauses.values()), default=None)

    def discard(self, tps: list[TP]) -> None:
        for tp in tps:
            self._pauses.pop(tp, None)

    def reset(self) -> None:
        self._pauses.clear()

    def __contains__(self, tp: object) -> bool:
        return tp in self._pauses

    def __len__(self) -> int:
        return len(self._pauses)


class RetryManager:
    """Failed attempts of the message at the head of each partition."""

    def __init__(self) -> None:
        self._attempts: dict[TP, tuple[int, int]] = {}

    def next(self, topic: str, partition: int, offset: int) -> int:
        """Count one more failure of this message; returns the number of the next retry (1-based)."""
        previous = self._attempts.get((topic, partition))
        attempt = previous[1] + 1 if previous and previous[0] == offset else 1
        self._attempts[(topic, partition)] = (offset, attempt)
        return attempt

    def done(self, topic: str, partition: int) -> None:
        self._attempts.pop((topic, partition), None)

    def discard(self, tps: list[TP]) -> None:
        for tp in tps:
            self._attempts.pop(tp, None)

    def reset(self) -> None:
        self._attempts.clear()

    def __bool__(self) -> bool:
        return bool(self._attempts)
