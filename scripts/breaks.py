"""Break each guarantee of the consumer runtime on purpose, in a copy of the tree, and check a test goes red.

Every entry is one edit to ``vvv_core/runtime/`` and the broker-free tests that must catch it
(``tests/test_runtime.py``, on the in-memory backend). The unbroken tree must pass them first.
Exit 1 if any break is not caught. ``make breaks`` runs it; ``make test`` too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Break:
    what: str
    file: str  # under vvv_core/runtime/
    old: str
    new: str
    test: str  # in tests/test_runtime.py


BREAKS = [
    Break(
        "drop the drain on a graceful stop",
        "loop.py",
        "            self._drain()\n",
        "            pass\n",
        "test_a_graceful_stop_lets_running_checks_finish_and_commits_them",
    ),
    Break(
        "no commit on revoke",
        "loop.py",
        "self.checkpoint.advance(sync=True)  # finished work",
        "pass  # finished work",
        "test_finished_work_is_committed_before_partitions_are_given_up",
    ),
    Break(
        "commit when partitions are lost",
        "loop.py",
        '(another member may own them already)."""\n',
        '(another member may own them already)."""\n        self.checkpoint.advance(sync=True)\n',
        "test_lost_partitions_commit_nothing",
    ),
    Break(
        "exactly-once switched off",
        "checkpoint.py",
        "self.exactly_once = exactly_once",
        "self.exactly_once = False",
        "test_exactly_once_commits_results_and_offsets_in_one_transaction",
    ),
    Break(
        "commit past an unfinished offset",
        "offsets.py",
        "position = self._open[0] if self._open else self._next",
        "position = self._next",
        "test_never_commits_past_an_unfinished_event",
    ),
    Break(
        "commit before the results are acknowledged",
        "checkpoint.py",
        "for batch in [b for b in self._in_delivery if b.remaining == 0]:",
        "for batch in list(self._in_delivery):",
        "test_offsets_are_committed_only_once_the_broker_acknowledged_the_results",
    ),
    Break(
        "skip the SQLite transaction",
        "checkpoint.py",
        "db.write_with_retry(self.group.conn, self.group.store, results, stopping=self._stopping)",
        "self.group.store(self.group.conn, results)",
        "test_a_store_that_fails_midway_leaves_nothing_behind",
    ),
    Break(
        "drop the dead-letter headers",
        "deadletter.py",
        "headers = dead_letter_headers(self.group, item, failure)",
        "headers = list(item.headers or [])",
        "test_dead_letters_keep_the_original_bytes_and_say_why",
    ),
    Break(
        "keep a too-large dead letter whole",
        "deadletter.py",
        "if value is not None and len(value) > self._max_bytes:",
        "if False:",
        "test_a_dead_letter_too_large_to_keep_whole_names_its_size",
    ),
    Break(
        "no limit on the dead-letter ratio",
        "deadletter.py",
        "if ratio > self._max_ratio:",
        "if False:",
        "test_a_flood_of_dead_letters_stops_the_member_before_publishing_them",
    ),
    Break(
        "ignore the time limit",
        "executors.py",
        "if now - started > self._time_limit and ticket in self._live:",
        "if False:",
        "test_an_attempt_past_the_time_limit_is_abandoned_and_tried_again",
    ),
    Break(
        "a video's events released in completion order",
        "executors.py",
        "if (later := self._behind.get(item.key)) is not None:",
        "if (later := self._behind.get(item.key)) is not None and False:",
        "test_a_videos_events_take_effect_in_offset_order_even_when_the_earlier_one_is_retried",
    ),
    Break(
        "a socket timeout taken for the runtime's time limit",
        "executors.py",
        "elif not isinstance(answer, Transient):",
        "elif not isinstance(answer, (Transient, TimeoutError)):",
        "test_dead_letters_keep_the_original_bytes_and_say_why",
    ),
    Break(
        "transient failures not retried",
        "executors.py",
        "if not answer.transient or attempt >= self._attempts:",
        "if True:",
        "test_transient_failures_are_retried_then_given_up_with_the_last_reason",
    ),
    Break(
        "a refused batch not sent again",
        "checkpoint.py",
        "                self._send_again(batch)  # replaces every batch in flight\n                return\n",
        "                continue\n",
        "test_a_refused_batch_is_sent_again_and_committed_once_acknowledged",
    ),
    Break(
        "a group's own offsets forgotten at the next incremental assignment",
        "checkpoint.py",
        "self._done_before.update(self.group.start_offsets(partitions))",
        "self._done_before = self.group.start_offsets(partitions)",
        "test_a_group_keeping_its_own_offsets_skips_what_they_say_is_done_across_incremental_assignments",
    ),
    Break(
        "no backpressure",
        "loop.py",
        "busy = self.executor.in_flight() >= self.group.max_in_flight()",
        "busy = False",
        "test_fetching_pauses_while_too_much_is_unfinished",
    ),
]


def run_tests(tree: Path, tests: list[str]) -> bool:
    """True when the tests pass against ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    selection = [f"tests/test_runtime.py::{t}" for t in tests]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--timeout", "60", *selection],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    return done.returncode == 0


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="vvv-breaks-") as tmp:
        tree = Path(tmp)
        for part in ("vvv_core", "tests", "pyproject.toml"):
            source = ROOT / part
            (shutil.copytree if source.is_dir() else shutil.copy)(source, tree / part)
        if not run_tests(tree, sorted({b.test for b in BREAKS})):
            print("breaks: the unbroken tree fails its own tests", file=sys.stderr)
            return 1
        missed = 0
        for b in BREAKS:
            path = tree / "vvv_core" / "runtime" / b.file
            original = path.read_text()
            if original.count(b.old) != 1:
                print(f"breaks: {b.what}: the code to break is not in {b.file} once", file=sys.stderr)
                return 1
            path.write_text(original.replace(b.old, b.new))
            caught = not run_tests(tree, [b.test])
            path.write_text(original)
            missed += not caught
            print(f"{'caught' if caught else 'MISSED'}  {b.what}  ({b.file}; {b.test})", flush=True)
        print(f"breaks: {len(BREAKS) - missed} of {len(BREAKS)} caught")
        return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
