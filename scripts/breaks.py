"""Break each promise on purpose, in a copy of the tree, and check that a test goes red.

Every entry is one edit to one file and the tests that must catch it. The unbroken tree must pass
those tests first; then each break is applied alone and its tests run against it: exit 1 if any
break is not caught. Tests that need a broker share one per kind for the whole run (started here,
handed to pytest as ``TEST_BOOTSTRAP``): the embedded one always, Apache Kafka wherever Java and its
jars are (always in CI). ``make breaks`` runs it, ``make test`` too; ``--only TEXT`` runs the breaks
whose description contains TEXT.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RUNTIME = "tests/test_runtime.py::"  # the runtime's broker-free tests (the in-memory backend)
OUTBOX = "tests/test_outbox.py::"
HOOK = "tests/test_hook.py::"


@dataclass(frozen=True)
class Break:
    what: str
    file: str  # from the repository's root
    old: str  # must occur exactly once in the file
    new: str
    test: str  # pytest node id(s) that must go red, separated by spaces
    broker: str | None = None  # None: broker-free; "any": on each broker there is; "embedded" or "kafka": that one


BREAKS = [
    Break(
        "drop the drain on a graceful stop",
        "vvv_core/runtime/loop.py",
        "            self._drain()\n",
        "            pass\n",
        RUNTIME + "test_a_graceful_stop_lets_running_checks_finish_and_commits_them",
    ),
    Break(
        "no commit on revoke",
        "vvv_core/runtime/loop.py",
        "self.checkpoint.advance(sync=True)  # finished work",
        "pass  # finished work",
        RUNTIME + "test_finished_work_is_committed_before_partitions_are_given_up",
    ),
    Break(
        "commit when partitions are lost",
        "vvv_core/runtime/loop.py",
        '(another member may own them already)."""\n',
        '(another member may own them already)."""\n        self.checkpoint.advance(sync=True)\n',
        RUNTIME + "test_lost_partitions_commit_nothing",
    ),
    Break(
        "exactly-once switched off",
        "vvv_core/runtime/checkpoint.py",
        "self.exactly_once = exactly_once",
        "self.exactly_once = False",
        RUNTIME + "test_exactly_once_commits_results_and_offsets_in_one_transaction",
    ),
    Break(
        "commit past an unfinished offset",
        "vvv_core/runtime/offsets.py",
        "position = self._open[0] if self._open else self._next",
        "position = self._next",
        RUNTIME + "test_never_commits_past_an_unfinished_event",
    ),
    Break(
        "commit before the results are acknowledged",
        "vvv_core/runtime/checkpoint.py",
        "for batch in [b for b in self._in_delivery if b.remaining == 0]:",
        "for batch in list(self._in_delivery):",
        RUNTIME + "test_offsets_are_committed_only_once_the_broker_acknowledged_the_results",
    ),
    Break(
        "skip the SQLite transaction",
        "vvv_core/runtime/checkpoint.py",
        "db.write_with_retry(self.group.conn, self.group.store, results, stopping=self._stopping)",
        "self.group.store(self.group.conn, results)",
        RUNTIME + "test_a_store_that_fails_midway_leaves_nothing_behind",
    ),
    Break(
        "drop the dead-letter headers",
        "vvv_core/runtime/deadletter.py",
        "headers = dead_letter_headers(self.group, item, failure)",
        "headers = list(item.headers or [])",
        RUNTIME + "test_dead_letters_keep_the_original_bytes_and_say_why",
    ),
    Break(
        "keep a too-large dead letter whole",
        "vvv_core/runtime/deadletter.py",
        "if value is not None and len(value) > self._max_bytes:",
        "if False:",
        RUNTIME + "test_a_dead_letter_too_large_to_keep_whole_names_its_size",
    ),
    Break(
        "no limit on the dead-letter ratio",
        "vvv_core/runtime/deadletter.py",
        "if ratio > self._max_ratio:",
        "if False:",
        RUNTIME + "test_a_flood_of_dead_letters_stops_the_member_before_publishing_them",
    ),
    Break(
        "ignore the time limit",
        "vvv_core/runtime/executors.py",
        "if now - started > self._time_limit and ticket in self._live:",
        "if False:",
        RUNTIME + "test_an_attempt_past_the_time_limit_is_abandoned_and_tried_again",
    ),
    Break(
        "a video's events released in completion order",
        "vvv_core/runtime/executors.py",
        "if (later := self._behind.get(item.key)) is not None:",
        "if (later := self._behind.get(item.key)) is not None and False:",
        RUNTIME + "test_a_videos_events_take_effect_in_offset_order_even_when_the_earlier_one_is_retried",
    ),
    Break(
        "a socket timeout taken for the runtime's time limit",
        "vvv_core/runtime/executors.py",
        "elif not isinstance(answer, Transient):",
        "elif not isinstance(answer, (Transient, TimeoutError)):",
        RUNTIME + "test_dead_letters_keep_the_original_bytes_and_say_why",
    ),
    Break(
        "transient failures not retried",
        "vvv_core/runtime/executors.py",
        "if not answer.transient or attempt >= self._attempts:",
        "if True:",
        RUNTIME + "test_transient_failures_are_retried_then_given_up_with_the_last_reason",
    ),
    Break(
        "a refused batch not sent again",
        "vvv_core/runtime/checkpoint.py",
        "                self._send_again(batch)  # replaces every batch in flight\n                return\n",
        "                continue\n",
        RUNTIME + "test_a_refused_batch_is_sent_again_and_committed_once_acknowledged",
    ),
    Break(
        "a group's own offsets forgotten at the next incremental assignment",
        "vvv_core/runtime/checkpoint.py",
        "self._done_before.update(self.group.start_offsets(partitions))",
        "self._done_before = self.group.start_offsets(partitions)",
        RUNTIME + "test_a_group_keeping_its_own_offsets_skips_what_they_say_is_done_across_incremental_assignments",
    ),
    Break(
        "no backpressure",
        "vvv_core/runtime/loop.py",
        "busy = self.executor.in_flight() >= self.group.max_in_flight()",
        "busy = False",
        RUNTIME + "test_fetching_pauses_while_too_much_is_unfinished",
    ),
    # -- the outbox and the hook ---------------------------------------------------------------
    Break(
        "keep all on a missed deadline: a call's finished pieces not removed from the outbox",
        "vvv_core/outbox.py",
        "                self.spool.record_delivered(run.segment, end)",
        "                pass",
        OUTBOX + "test_a_backlog_ten_deadlines_long_shrinks_every_call_with_the_broker_frozen_mid_call",
        broker="any",
    ),
    Break(
        "no pieces: the whole backlog sent as one",
        "vvv_core/outbox.py",
        "spans = backlog.take(size)",
        "spans = backlog.take(1 << 30)",
        OUTBOX + "test_a_backlog_ten_deadlines_long_shrinks_every_call_with_the_broker_frozen_mid_call",
        broker="any",
    ),
    Break(
        "what earlier calls delivered of a segment sent again",
        "vvv_core/outbox.py",
        "start = self.done.get(segment.name, 0)",
        "start = 0",
        OUTBOX + "test_a_backlog_ten_deadlines_long_shrinks_every_call_with_the_broker_frozen_mid_call",
        broker="any",
    ),
    Break(
        "a piece still unanswered at the deadline counted as delivered",
        "vvv_core/outbox.py",
        "                sent.cut_off = True\n                break\n            if now - said",
        "                break\n            if now - said",
        HOOK + "test_a_broker_frozen_mid_call_costs_the_deadline_and_loses_nothing",
        broker="any",
    ),
    Break(
        "the hook's accounting: a piece cut off by the deadline counted as delivered",
        "vvv_core/outbox.py",
        "result.unconfirmed = sent.produced\n",
        "result.unconfirmed = sent.produced\n                        result.delivered += len(piece)\n",
        OUTBOX + "test_a_backlog_ten_deadlines_long_shrinks_every_call_with_the_broker_frozen_mid_call",
        broker="any",
    ),
    Break(
        "the hook's accounting: refused events counted as delivered",
        "vvv_core/outbox.py",
        "result.delivered += len(piece) - len(kept)",
        "result.delivered += len(piece)",
        OUTBOX + "test_a_refused_event_is_kept_ahead_with_its_videos_later_events_behind_it",
        broker="any",
    ),
    Break(
        "a failed send loses its events: a refused event not kept",
        "vvv_core/outbox.py",
        "kept = [m for m in piece if m.value in failed or (m.topic, m.key) in held] if failed or held else []",
        "kept = [m for m in piece if (m.topic, m.key) in held] if held else []",
        OUTBOX + "test_a_refused_event_is_kept_ahead_with_its_videos_later_events_behind_it",
        broker="any",
    ),
    Break(
        "the order of kept events: a refused event's video's later events sent before it",
        "vvv_core/outbox.py",
        "send = [m for m in piece if (m.topic, m.key) not in held] if held else piece",
        "send = piece",
        OUTBOX + "test_a_refused_event_is_kept_ahead_with_its_videos_later_events_behind_it",
        broker="any",
    ),
    Break(
        "the order of kept events: what a piece leaves behind written after the rest, not ahead",
        "vvv_core/outbox.py",
        "written = self.spool.write(kept, self._ahead)",
        "written = self.spool.write(kept)",
        OUTBOX + "test_a_refused_event_is_kept_ahead_with_its_videos_later_events_behind_it",
        broker="any",
    ),
    Break(
        "the outbox keeps nothing it could not deliver",
        "vvv_core/outbox.py",
        "kept = backlog.keep_rest()",
        "kept = 0",
        HOOK + "test_broker_down_returns_in_bounded_time_and_loses_nothing",
        broker="any",
    ),
    Break(
        "a failure while sending is not caught (events neither sent nor kept)",
        "vvv_core/outbox.py",
        "except Exception as exc:  # whatever fails while sending",
        "except ZeroDivisionError as exc:  # whatever fails while sending",
        HOOK + "test_whatever_fails_while_sending_every_event_is_kept",
        broker="any",
    ),
    Break(
        "the producer's failure reports go to its first piece's record, not the current one's",
        "vvv_core/outbox.py",
        "on_delivery=lambda err, msg: self._failures.on_delivery(err, msg),",
        "on_delivery=self._failures.on_delivery,",
        HOOK + "test_an_event_the_broker_refuses_on_a_later_call_is_kept_not_counted_delivered",
        broker="kafka",
    ),
    Break(
        "a full producer queue gives up instead of waiting for room",
        "vvv_core/outbox.py",
        "while time.monotonic() < deadline and not (stop and stop.is_set()):\n            producer.poll(0.05)",
        "while False:\n            producer.poll(0.05)",
        OUTBOX + "test_publish_waits_for_room_in_the_producers_queue",
        broker="any",
    ),
    Break(
        "vvv outbox flush ignores its --timeout",
        "vvv_core/cli.py",
        "report = flush_outbox(args.db, settings, args.timeout, stop)",
        "report = flush_outbox(args.db, settings, DRAIN_TIMEOUT, stop)",
        OUTBOX + "test_flush_is_bounded_by_its_own_timeout",
        broker="any",
    ),
    Break(
        "the pace not remembered between calls",
        "vvv_core/outbox.py",
        "        if abs(self.rate - self.saved) > self.saved / 5:",
        "        if False:",
        OUTBOX + "test_the_pace_is_remembered_beside_the_outbox_and_moves_sensibly",
    ),
    Break(
        "one quick piece sets the pace to what it measured",
        "vvv_core/outbox.py",
        "min(max(self.rate, measured), 2 * self.rate)",
        "max(self.rate, measured)",
        OUTBOX + "test_the_pace_is_remembered_beside_the_outbox_and_moves_sensibly",
    ),
    Break(
        "no drain lock around the outbox",
        "vvv_core/spool.py",
        "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)",
        "pass",
        HOOK + "test_a_second_process_draining_queues_behind_it_in_order",
        broker="any",
    ),
    Break(
        "a kept segment renamed into place before its bytes are fsynced",
        "vvv_core/spool.py",
        "                f.write(data)\n            os.fsync(fd)\n",
        "                f.write(data)\n",
        OUTBOX + "test_kept_segments_and_finished_pieces_are_on_disk_before_the_drain_goes_on",
        broker="any",
    ),
    Break(
        "a kept segment written under its own name, not a temporary file renamed",
        "vvv_core/spool.py",
        'tmp = target.with_suffix(".tmp")',
        "tmp = target",
        OUTBOX + "test_kept_segments_and_finished_pieces_are_on_disk_before_the_drain_goes_on",
        broker="any",
    ),
    Break(
        "the folder not fsynced after a segment's rename",
        "vvv_core/spool.py",
        "        self._sync_folder()\n        return paths",
        "        return paths",
        OUTBOX + "test_kept_segments_and_finished_pieces_are_on_disk_before_the_drain_goes_on",
        broker="any",
    ),
    Break(
        "a finished piece not fsynced before the next one is sent",
        "vvv_core/spool.py",
        "a torn line stays its own\n            os.fsync(fd)\n",
        "a torn line stays its own\n",
        OUTBOX + "test_kept_segments_and_finished_pieces_are_on_disk_before_the_drain_goes_on",
        broker="any",
    ),
    Break(
        "the progress record kept once the outbox is empty",
        "vvv_core/spool.py",
        "            self.progress_path.unlink(missing_ok=True)\n            return\n",
        "            return\n",
        OUTBOX + "test_what_a_drain_leaves_behind_is_tidied",
        broker="any",
    ),
    Break(
        "temporary files a crash left never removed",
        "vvv_core/spool.py",
        "                if time.time() - tmp.stat().st_mtime > 3600:",
        "                if False:",
        OUTBOX + "test_what_a_drain_leaves_behind_is_tidied",
        broker="any",
    ),
    Break(
        "a file the outbox cannot read stops it instead of being set aside",
        "vvv_core/outbox.py",
        'log.error("%s: set aside as %s", exc, self.spool.set_aside(segment).name)\n                continue',
        "self.blocked = str(exc)\n                return False",
        OUTBOX + "test_a_records_file_keeps_its_format_and_an_unreadable_file_is_set_aside",
        broker="any",
    ),
    Break(
        "outbox files private to their creator (0600), not shared with the group",
        "vvv_core/spool.py",
        "FILE_MODE = 0o660",
        "FILE_MODE = 0o600",
        OUTBOX + "test_two_users_share_the_outbox_through_its_group",
        broker="any",
    ),
    Break(
        "rejections keyed by the item's text, not its video id",
        "vvv_core/hook.py",
        'report.reject(rejection_key(video_id, item, f"{name}[{position}]"), reason)',
        "report.reject(repr(item)[:80], reason)",
        HOOK + "test_invalid_items_are_rejected_with_reasons_not_raised",
        broker="any",
    ),
    # -- the sink ------------------------------------------------------------------------------
    Break(
        "the sink ignores the offsets it stored with its effects",
        "vvv_core/groups/sink.py",
        'rows = self.conn.execute("SELECT topic, partition, next_offset FROM vvv_sink_offsets").fetchall()',
        "rows = []",
        "tests/test_sink.py::test_a_sink_killed_at_any_instant_neither_loses_nor_repeats_an_effect",
        broker="any",
    ),
]


def run_tests(tree: Path, tests: list[str], broker: tuple[str, str] | None) -> bool:
    """True when ``tests`` pass against ``tree``; ``broker``: (kind, bootstrap) for tests that need one."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    if broker is not None:
        env |= {"TEST_BROKER": broker[0], "TEST_BOOTSTRAP": broker[1]}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--timeout", "120", *tests],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    return done.returncode == 0


def kinds(b: Break, available: dict[str, str]) -> list[str | None]:
    """The brokers ``b`` runs against: none, or each of those it applies to that is here."""
    if b.broker is None:
        return [None]
    wanted = ["embedded", "kafka"] if b.broker == "any" else [b.broker]
    return [k for k in wanted if k in available]


def start_brokers(stack: contextlib.ExitStack, needed: set[str]) -> dict[str, str]:
    """One broker per kind the breaks need, kept for the whole run: kind -> bootstrap."""
    from vvv_core.broker import EmbeddedBroker

    started: dict[str, str] = {}
    if "embedded" in needed:
        started["embedded"] = stack.enter_context(EmbeddedBroker()).bootstrap
    if "kafka" in needed:
        sys.path.insert(0, str(ROOT / "tests"))
        from conftest import FAST_KIP848  # the test session's broker settings

        from vvv_core.apache_kafka import ApacheKafka, KafkaNotInstalled

        try:
            started["kafka"] = stack.enter_context(ApacheKafka(properties=FAST_KIP848)).bootstrap
        except KafkaNotInstalled as exc:
            if os.environ.get("CI"):
                raise
            print(f"breaks: the Apache Kafka ones skipped ({exc})", flush=True)
    return started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run only the breaks whose description contains this")
    chosen = [b for b in BREAKS if parser.parse_args().only in b.what]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vvv-breaks-") as tmp, contextlib.ExitStack() as stack:
        tree = Path(tmp)
        for part in ("vvv_core", "tests", "pyproject.toml", "kafka/broker.properties", "deploy", "scripts"):
            source, target = ROOT / part, tree / part
            target.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
        if (ROOT / "kafka" / "lib").is_dir():  # for tests that start a broker of their own (own_broker)
            (tree / "kafka" / "lib").symlink_to((ROOT / "kafka" / "lib").resolve())
        brokers = start_brokers(
            stack, {k for b in chosen for k in (["embedded", "kafka"] if b.broker == "any" else [b.broker]) if k}
        )
        plan = [(b, kind) for b in chosen for kind in kinds(b, brokers)]
        for kind in dict.fromkeys(kind for _b, kind in plan):
            tests = sorted({t for b, k in plan if k == kind for t in b.test.split()})
            if not run_tests(tree, tests, None if kind is None else (kind, brokers[kind])):
                print(f"breaks: the unbroken tree fails its own tests ({kind or 'no broker'})", file=sys.stderr)
                return 1
        missed = 0
        for b, kind in plan:
            path = tree / b.file
            original = path.read_text()
            if original.count(b.old) != 1:
                print(f"breaks: {b.what}: the code to break is not in {b.file} exactly once", file=sys.stderr)
                return 1
            path.write_text(original.replace(b.old, b.new))
            try:
                caught = not run_tests(tree, b.test.split(), None if kind is None else (kind, brokers[kind]))
            finally:
                path.write_text(original)
            missed += not caught
            where = f"{b.file}; {kind or 'no broker'}"
            print(f"{'caught' if caught else 'MISSED'}  {b.what}  ({where}; {b.test})", flush=True)
        print(
            f"breaks: {len(plan) - missed} of {len(plan)} caught ({len(chosen)} breaks) "
            f"in {time.monotonic() - started:.0f} s"
        )
        return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
