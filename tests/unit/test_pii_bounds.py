"""worker.pii on hostile sizes and shapes: linear time, truncation before scrubbing, readable ports and line numbers.

A provider answer or a log line is attacker-influenced text; a scrubber that backtracks quadratically turns a 240 KB
answer into minutes of CPU inside an open transaction. The bounds below are generous (the fixed scrubber takes a few
milliseconds; the old one took 15 s on the 40 KB input), so a shared, loaded machine does not make them flaky.
"""

from __future__ import annotations

import json
import time

import pytest

from worker.pii import MAX_SCRUB_CHARS, TRUNCATED, scrub_text, storable_raw

#: Shapes that made the old pattern backtrack: runs of word characters, dots and digits with no '@' or space.
HOSTILE = {
    "dotted-words": "ab1." * 10_000,
    "dotted-letters": "a.b1" * 10_000,
    "spaced-digits": "1 " * 20_000,
}


@pytest.mark.parametrize("size", [40_000, 240_000])
@pytest.mark.parametrize("shape", sorted(HOSTILE))
def test_scrubbing_hostile_text_takes_linear_time(shape: str, size: int) -> None:
    text = (HOSTILE[shape] * (size // len(HOSTILE[shape]) + 1))[:size]
    started = time.perf_counter()
    scrub_text(text)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("shape", sorted(HOSTILE))
def test_the_pattern_itself_is_linear_below_the_truncation_cap(shape: str) -> None:
    """Just under the cap nothing is cut off, so this times the regular expression alone."""
    text = (HOSTILE[shape] * MAX_SCRUB_CHARS)[: MAX_SCRUB_CHARS - 1]
    started = time.perf_counter()
    scrub_text(text)
    assert time.perf_counter() - started < 1.0


def test_an_over_long_text_is_cut_before_it_is_scrubbed_and_says_so() -> None:
    text = "call +18135551234 now " * 20_000  # 440 KB
    out = scrub_text(text)
    assert len(out) <= MAX_SCRUB_CHARS + len(TRUNCATED)
    assert out.endswith(TRUNCATED)
    assert "8135551234" not in out and "+1******1234" in out


def test_a_cut_never_leaves_half_a_number_unmasked() -> None:
    """The cut goes back to a word boundary: a number cut to its first digits would no longer look like one."""
    filler = "x" * (MAX_SCRUB_CHARS - 8) + " "
    out = scrub_text(filler + "member@example.com 8135551234")
    assert "member" not in out and "813555" not in out


def test_a_240_kb_provider_answer_is_stored_quickly_and_bounded() -> None:
    answer = {"id": "abc", "detail": "ab1." * 60_000, "to": "+18135551234"}
    started = time.perf_counter()
    stored = storable_raw(answer)
    assert time.perf_counter() - started < 1.0
    assert len(json.dumps(stored)) < 5_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Error 111 connecting to 127.0.0.1:6379. Connection refused.",
         "Error 111 connecting to 127.0.0.1:6379. Connection refused."),
        ("could not connect to db.internal.example:5432", "could not connect to db.internal.example:5432"),
        ("redis://localhost:16379/2 is down", "redis://localhost:16379/2 is down"),
        ("listening on [::1]:8080", "listening on [::1]:8080"),
        ('File "/srv/worker/policy/intake.py", line 1234, in accept_send',
         'File "/srv/worker/policy/intake.py", line 1234, in accept_send'),
        ("Process 'ForkPoolWorker-2' pid:48213 exited", "Process 'ForkPoolWorker-2' pid:48213 exited"),
        ("worker pid 48213 started", "worker pid 48213 started"),
        # still masked: codes and numbers that are not after a host, 'line' or 'pid'
        ("code:4829.", "code:****."),
        ("Your OTP is 482913", "Your OTP is ******"),
        ("send to +18135551234 via 10.0.0.1:8443", "send to +1******1234 via 10.0.0.1:8443"),
    ],
)
def test_ports_pids_and_line_numbers_stay_readable(text: str, expected: str) -> None:
    assert scrub_text(text) == expected
    assert scrub_text(scrub_text(text)) == expected
