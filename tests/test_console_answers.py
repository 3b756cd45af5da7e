"""The console's answers (vvv_core/console/answers.py): one per view per interval, shared by every request."""

from __future__ import annotations

import asyncio
import threading

import pytest

from vvv_core.console.answers import MOST, Answers


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_answer_per_interval_is_shared_by_every_request():
    clock, made = Clock(), []
    answers = Answers(clock)
    release = threading.Event()

    def compute() -> str:
        release.wait(10)  # every request below comes while it is being made
        made.append(1)
        return f"answer {len(made)}"

    async def ask() -> tuple[str, float]:
        return await answers.get(("pipeline", ()), 2.0, compute)

    async def scenario() -> tuple[list, tuple, tuple, tuple]:
        waiting = [asyncio.ensure_future(ask()) for _ in range(10)]
        await asyncio.sleep(0.05)
        release.set()
        first = await asyncio.gather(*waiting)
        clock.now += 1.5
        kept = await ask()
        clock.now += 0.5
        again = await ask()
        other = await answers.get(("dead-letters", ("scoring", "")), 3.0, lambda: "letters")
        return first, kept, again, other

    first, kept, again, other = asyncio.run(scenario())
    assert first == [("answer 1", 2.0)] * 10  # ten requests at once: made once, each told it holds 2 s
    assert kept == ("answer 1", pytest.approx(0.5))  # later in the interval: the same one, for what is left
    assert again == ("answer 2", 2.0) and len(made) == 2  # the interval over: made again
    assert other == ("letters", 3.0) and dict(answers.computed) == {"pipeline": 2, "dead-letters": 1}

    async def after_a_replay() -> tuple[str, float]:
        answers.forget("dead-letters")  # a replay changed them: made again at once, the others kept
        await ask()
        return await answers.get(("dead-letters", ("scoring", "")), 3.0, lambda: "letters, one replayed")

    assert asyncio.run(after_a_replay()) == ("letters, one replayed", 3.0) and answers.computed["pipeline"] == 2


def test_a_failed_answer_is_not_kept():
    answers, calls = Answers(Clock()), []

    def compute() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the database went away")
        return "fine"

    async def scenario() -> str:
        with pytest.raises(RuntimeError):
            await answers.get(("summary", ()), 5.0, compute)
        return (await answers.get(("summary", ()), 5.0, compute))[0]

    assert asyncio.run(scenario()) == "fine" and len(calls) == 2


def test_the_answers_kept_are_bounded():
    clock = Clock()
    answers = Answers(clock)

    async def scenario() -> None:
        for i in range(3 * MOST):  # a search per keystroke, sorts, pages: distinct questions
            await answers.get(("dead-letters", ("scoring", f"q{i}")), 3.0, lambda: "letters")
            clock.now += 0.001

    asyncio.run(scenario())
    assert len(answers) <= MOST
