"""Which errors are retried, and that the retry is bounded."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
import redis
from sqlalchemy.exc import OperationalError

from worker.transient import backoff_delays, is_transient, retry_transient


def _wrapped(orig: BaseException) -> OperationalError:
    return OperationalError("SELECT 1", {}, orig)


@pytest.mark.parametrize(("err", "transient"), [
    (redis.ConnectionError("refused"), True),
    (redis.TimeoutError("timed out"), True),
    (_wrapped(psycopg.errors.AdminShutdown("terminating connection due to administrator command")), True),
    (_wrapped(psycopg.errors.CannotConnectNow("the database system is starting up")), True),
    (_wrapped(psycopg.errors.SerializationFailure("could not serialize")), True),
    (_wrapped(psycopg.OperationalError("server closed the connection unexpectedly")), True),
    (_wrapped(psycopg.errors.UniqueViolation("duplicate key")), False),
    (redis.ResponseError("WRONGTYPE"), False),
    (ValueError("a bug"), False),
])
def test_transient_errors_are_told_apart_from_bugs(err: BaseException, transient: bool) -> None:
    assert is_transient(err) is transient


def test_the_retry_is_bounded_and_gives_the_last_error_back() -> None:
    calls: list[int] = []

    def always_down() -> None:
        calls.append(1)
        raise redis.ConnectionError("down")

    with pytest.raises(redis.ConnectionError):
        retry_transient(always_down, attempts=4, base=0.001, cap=0.002)
    assert len(calls) == 4


def test_a_bug_is_not_retried() -> None:
    calls: list[int] = []

    def buggy() -> None:
        calls.append(1)
        raise KeyError("x")

    with pytest.raises(KeyError):
        retry_transient(buggy, attempts=4, base=0.001)
    assert len(calls) == 1


def test_a_passing_outage_is_ridden_out() -> None:
    answers: Iterator[Exception | str] = iter([redis.ConnectionError("down"), redis.ConnectionError("down"), "ok"])

    def flaky() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert retry_transient(flaky, attempts=5, base=0.001) == "ok"


def test_backoff_doubles_up_to_its_cap() -> None:
    delays = backoff_delays(8, base=0.1, cap=1.0)
    assert len(delays) == 7 and max(delays) <= 1.0 and delays[0] <= 0.1 and delays[-1] >= 0.5
