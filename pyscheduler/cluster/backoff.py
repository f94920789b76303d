"""Retry pacing of the writer and reader threads after a failed round."""

from __future__ import annotations

import threading

__all__ = ["Backoff"]

FIRST_S = 0.05
MOST_S = 2.0


class Backoff:
    """Exponential backoff: the first pause is ``first`` seconds, each next one
    doubles up to ``most``; a successful round starts again from ``first``.
    With ``first=0`` the first retry is at once, the next after 10 ms.

    :meth:`pause` waits on an event, so stopping the thread cuts the pause short.
    """

    __slots__ = ("first", "most", "delay")

    def __init__(self, first: float = FIRST_S, most: float = MOST_S) -> None:
        self.first = first
        self.most = most
        self.delay = first

    def reset(self) -> None:
        """A round succeeded: the next failure pauses ``first`` seconds again."""
        self.delay = self.first

    def pause(self, stop: threading.Event, longest: float = float("inf")) -> None:
        """Wait the current delay (at most ``longest`` s, or until ``stop`` is set),
        then double it."""
        stop.wait(max(0.0, min(self.delay, longest)))
        self.delay = min(max(self.delay * 2, self.first, 0.01), self.most)
