"""core.retry: the one retry policy (tries, doubling waits with a cap and jitter), with a fake
sleep that records the waits instead of taking them."""

from __future__ import annotations

import pytest

from preserve.core.retry import Retry, RetryPolicy


class Flaky:
    """An operation that fails ``failures`` times with ``error``, then returns "done"."""

    def __init__(self, failures: int, error: type[BaseException] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return "done"


class FakeSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_succeeds_after_failures_with_doubling_waits() -> None:
    policy = RetryPolicy(attempts=5, base_delay=2.0, max_delay=60.0, jitter=0.0)
    op, sleep = Flaky(3), FakeSleep()
    assert policy.call(op, retry_on=ConnectionError, sleep=sleep) == "done"
    assert op.calls == 4
    assert sleep.waits == [2.0, 4.0, 8.0]


def test_the_last_failure_propagates_unchanged_after_all_attempts() -> None:
    policy = RetryPolicy(attempts=3, base_delay=1.0, jitter=0.0)
    op, sleep = Flaky(10), FakeSleep()
    with pytest.raises(ConnectionError, match="failure 3"):
        policy.call(op, retry_on=ConnectionError, sleep=sleep)
    assert op.calls == 3 and sleep.waits == [1.0, 2.0]  # no wait after the last try


def test_one_attempt_never_retries() -> None:
    op, sleep = Flaky(1), FakeSleep()
    with pytest.raises(ConnectionError):
        RetryPolicy(attempts=1).call(op, retry_on=ConnectionError, sleep=sleep)
    assert op.calls == 1 and sleep.waits == []


def test_other_exception_types_are_not_retried() -> None:
    op, sleep = Flaky(1, error=ValueError), FakeSleep()
    with pytest.raises(ValueError):
        RetryPolicy(attempts=5).call(op, retry_on=(ConnectionError, TimeoutError), sleep=sleep)
    assert op.calls == 1 and sleep.waits == []


def test_retry_if_refuses_a_retry() -> None:
    seen: list[BaseException] = []

    def only_timeouts(exc: OSError) -> bool:
        seen.append(exc)
        return isinstance(exc, TimeoutError)

    op, sleep = Flaky(2, error=ConnectionError), FakeSleep()
    with pytest.raises(ConnectionError, match="failure 1"):
        RetryPolicy(attempts=5).call(op, retry_on=OSError, retry_if=only_timeouts, sleep=sleep)
    assert op.calls == 1 and len(seen) == 1 and sleep.waits == []
    op = Flaky(2, error=TimeoutError)
    assert RetryPolicy(attempts=5, jitter=0.0).call(op, retry_on=OSError, retry_if=only_timeouts, sleep=sleep) == "done"
    assert op.calls == 3


def test_waits_are_capped_at_max_delay() -> None:
    policy = RetryPolicy(attempts=8, base_delay=10.0, max_delay=30.0, jitter=0.0)
    sleep = FakeSleep()
    assert policy.call(Flaky(7), retry_on=ConnectionError, sleep=sleep) == "done"
    assert sleep.waits == [10.0, 20.0, 30.0, 30.0, 30.0, 30.0, 30.0]
    assert policy.delay(10_000) == 30.0  # no overflow however many tries


def test_jitter_shortens_each_wait_by_at_most_its_fraction() -> None:
    policy = RetryPolicy(attempts=5, base_delay=4.0, max_delay=60.0, jitter=0.25)
    assert policy.delay(1, rand=lambda: 0.0) == 4.0
    assert policy.delay(1, rand=lambda: 1.0) == 3.0  # 75 % of it
    assert policy.delay(2, rand=lambda: 0.5) == 8.0 * 0.875
    sleep = FakeSleep()
    policy.call(Flaky(4), retry_on=ConnectionError, sleep=sleep)
    assert all(0.75 * full <= wait <= full for wait, full in zip(sleep.waits, [4.0, 8.0, 16.0, 32.0], strict=True))


def test_on_retry_hears_of_each_retry_before_its_wait() -> None:
    events: list[tuple[str, int, int, float, str]] = []
    sleep = FakeSleep()

    def heard(retry: Retry) -> None:
        events.append(("retry", retry.attempt, retry.attempts, retry.delay, str(retry.error)))

    def slept(seconds: float) -> None:
        events.append(("sleep", 0, 0, seconds, ""))
        sleep(seconds)

    policy = RetryPolicy(attempts=3, base_delay=0.5, jitter=0.0)
    assert policy.call(Flaky(2), retry_on=ConnectionError, on_retry=heard, sleep=slept) == "done"
    assert events == [
        ("retry", 1, 3, 0.5, "failure 1"),
        ("sleep", 0, 0, 0.5, ""),
        ("retry", 2, 3, 1.0, "failure 2"),
        ("sleep", 0, 0, 1.0, ""),
    ]


def test_a_zero_base_delay_retries_at_once() -> None:
    sleep = FakeSleep()
    assert RetryPolicy(attempts=3, base_delay=0.0).call(Flaky(2), retry_on=ConnectionError, sleep=sleep) == "done"
    assert sleep.waits == [0.0, 0.0]


@pytest.mark.parametrize(
    "kwargs",
    [{"attempts": 0}, {"base_delay": -1.0}, {"max_delay": -1.0}, {"jitter": 1.5}, {"jitter": -0.1}],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_the_policy_is_a_frozen_value() -> None:
    policy = RetryPolicy()
    assert policy == RetryPolicy(attempts=5, base_delay=2.0, max_delay=60.0, jitter=0.25)
    with pytest.raises(AttributeError):
        policy.attempts = 9  # type: ignore[misc]
