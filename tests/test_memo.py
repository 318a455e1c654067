"""The one TTL memo behind the configuration caches: None is an answer, the TTL counts from the question."""

from __future__ import annotations

from voicebook.memo import Memo


def test_an_answer_is_kept_for_the_ttl_from_when_it_was_asked() -> None:
    now = [100.0]
    memo: Memo[str, str | None] = Memo(10.0, clock=lambda: now[0])
    asked_at = memo.now()
    now[0] = 103.0  # the lookup took 3 s: the answer still expires 10 s after the question
    memo.keep("+4930", None, asked_at)
    assert memo.fresh("+4930") == (None,)  # "no answer" is an answer, not a miss
    now[0] = 109.9
    assert memo.fresh("+4930") == (None,)
    now[0] = 110.0
    assert memo.fresh("+4930") is None  # its last instant is past
    assert memo.fresh("+4940") is None


def test_a_full_memo_starts_over_and_a_stale_answer_can_be_forgotten() -> None:
    memo: Memo[int, int] = Memo(10.0, clock=lambda: 0.0, max_entries=2)
    memo.keep(1, 10, 0.0)
    memo.keep(2, 20, 0.0)
    memo.keep(3, 30, 0.0)  # full: the others are forgotten
    assert (memo.fresh(1), memo.fresh(2), memo.fresh(3)) == (None, None, (30,))
    memo.forget(3)
    assert memo.fresh(3) is None
