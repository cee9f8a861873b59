"""The one retry policy of the library: how often an operation is tried, and how long to wait between
tries (doubling from a base, capped, with jitter). Side effects: `RetryPolicy.call` sleeps between
tries (through the ``sleep`` it is given, `time.sleep` by default); nothing else.

What counts as worth another try is the caller's decision (``retry_on`` exception types, refined by
``retry_if``): the policy only decides how many tries and how long to wait. The last failure, and
any failure the caller does not want retried, leaves unchanged, so the caller translates it at its
own boundary."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)

#: beyond this many doublings every wait is max_delay anyway (and 2**n would overflow a float)
_MAX_DOUBLINGS = 64


@dataclass(frozen=True)
class Retry:
    """A failed try that is about to be tried again, as told to ``on_retry`` before the wait."""

    attempt: int  # the try that failed, 1 for the first
    attempts: int  # tries allowed in all
    delay: float  # seconds until the next try
    error: BaseException


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all, the first included (1: never tried again). The wait before the
    first retry is ``base_delay`` seconds, doubled before each next one, at most ``max_delay``;
    each wait is then shortened by a random fraction of at most ``jitter`` (0.25: the wait is
    between 75 % and 100 % of it), so clients that failed together do not come back together."""

    attempts: int = 5
    base_delay: float = 2.0
    max_delay: float = 60.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"a retry policy needs at least one attempt, got {self.attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError(f"retry delays cannot be negative, got {self.base_delay} and {self.max_delay}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"retry jitter is a fraction between 0 and 1, got {self.jitter}")

    def delay(self, retry: int, *, rand: Callable[[], float] = random.random) -> float:
        """The wait in seconds before retry number ``retry`` (1: the wait before the second try);
        ``rand`` returns a number in [0, 1) and scales the jitter."""
        full = min(self.base_delay * 2.0 ** min(max(retry - 1, 0), _MAX_DOUBLINGS), self.max_delay)
        return full * (1.0 - self.jitter * rand())

    def call(
        self,
        operation: Callable[[], T],
        *,
        retry_on: type[E] | tuple[type[E], ...],
        retry_if: Callable[[E], bool] | None = None,
        on_retry: Callable[[Retry], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> T:
        """``operation()``, tried again after a wait while it raises one of ``retry_on`` (and
        ``retry_if(error)``, when given, says trying again may help), at most ``attempts`` times
        in all. ``on_retry`` hears of each retry before its wait (to log or count it). Any other
        exception, and the last failure, propagates unchanged."""
        attempt = 1
        while True:
            try:
                return operation()
            except retry_on as exc:
                if attempt >= self.attempts or (retry_if is not None and not retry_if(exc)):
                    raise
                wait = self.delay(attempt, rand=rand)
                if on_retry is not None:
                    on_retry(Retry(attempt=attempt, attempts=self.attempts, delay=wait, error=exc))
                sleep(wait)
                attempt += 1
