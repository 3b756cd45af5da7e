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
BOUNDARIES = "tests/test_boundaries.py::"
CONFIG = "tests/test_config.py::"


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
    # -- the sink ------------------------------------------------------------------------------
    Break(
        "the sink ignores the offsets it stored with its effects",
        "vvv_core/groups/sink.py",
        'rows = self.conn.execute("SELECT topic, partition, next_offset FROM vvv_sink_offsets").fetchall()',
        "rows = []",
        "tests/test_sink.py::test_a_sink_killed_at_any_instant_neither_loses_nor_repeats_an_effect",
        broker="any",
    ),
    # -- the boundaries: messages, settings, files and URLs from outside (issue 21) ----------------------
    Break(
        "a result's detail branch not checked against its group",
        "vvv_core/events.py",
        "    if fields != DETAIL_FIELDS[group]:",
        "    if not fields:",
        BOUNDARIES + "test_a_result_whose_group_and_detail_disagree_is_a_dead_letter_and_the_partition_moves_on",
    ),
    Break(
        "results' times not bounded like events'",
        "vvv_core/events.py",
        '        _created_at(event_at, "event_at")',
        "        pass",
        BOUNDARIES + "test_a_far_future_time_never_pins_a_verdict",
    ),
    Break(
        "results' reasons not capped",
        "vvv_core/events.py",
        '    _text("reason", detail["reason"])',
        "    pass",
        BOUNDARIES + "test_a_result_for_a_video_the_database_does_not_know_is_a_dead_letter_to_replay",
    ),
    Break(
        "the sink stores results for videos the cron database does not know",
        "vvv_core/groups/sink.py",
        "if unknown := _unknown_videos(conn, [o for o in outcomes if not o.inbound.event.stored]):",
        "if unknown := []:",
        BOUNDARIES + "test_a_result_for_a_video_the_database_does_not_know_is_a_dead_letter_to_replay",
    ),
    Break(
        "no safety net when a group's store fails on one event",
        "vvv_core/runtime/checkpoint.py",
        "except STORE_INPUT_ERRORS as exc:",
        "except () as exc:",
        BOUNDARIES + "test_a_store_failing_on_one_event_dead_letters_that_event_and_stores_the_others",
    ),
    Break(
        "a schema id the registry does not have stops the member",
        "vvv_core/registry.py",
        'if getattr(exc, "http_status_code", None) == 404:',
        "if False:",
        BOUNDARIES + "test_a_schema_id_the_registry_does_not_have_is_a_dead_letter_not_a_stop",
    ),
    Break(
        "a dead letter keeps a key or headers too large to send",
        "vvv_core/runtime/deadletter.py",
        "        if own > SOURCE_ROOM:",
        "        if False:",
        BOUNDARIES + "test_a_message_whose_key_or_headers_are_too_large_to_dead_letter_is_dead_lettered_without_them",
        broker="any",
    ),
    Break(
        "a velocity past a 64-bit integer not clamped",
        "vvv_core/domain/scoring.py",
        "velocity = max(-LONG_MAX, min(LONG_MAX, round(view_velocity)))",
        "velocity = round(view_velocity)",
        BOUNDARIES + "test_a_velocity_past_what_sqlite_and_avro_hold_is_clamped_not_a_dead_letter",
    ),
    Break(
        "Kubernetes service links not ignored",
        "vvv_core/config.py",
        'if name.startswith("VVV_") and service_link(name, value):',
        "if False:",
        CONFIG + "test_kubernetes_service_links_are_never_settings",
    ),
    Break(
        "a file a setting names opened and read whatever it is (a FIFO blocks)",
        "vvv_core/config.py",
        "        if not stat.S_ISREG(os.stat(path).st_mode):\n"
        '            raise ConfigError(f"{what}: not a regular file (a FIFO, device or folder is not read)")\n'
        "        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)\n"
        '        with open(fd, "rb") as file:\n'
        "            if not stat.S_ISREG(os.fstat(fd).st_mode):\n",
        '        with open(path, "rb") as file:\n            if False:\n',
        CONFIG + "test_files_that_settings_name_are_read_in_bounded_time_or_refused_in_one_line",
    ),
    Break(
        "a secret that is not UTF-8 raises",
        "vvv_core/config.py",
        "    except UnicodeDecodeError:",
        "    except ZeroDivisionError:",
        CONFIG + "test_files_that_settings_name_are_read_in_bounded_time_or_refused_in_one_line",
    ),
    Break(
        "two topics that are one accepted",
        "vvv_core/config.py",
        "            if same:",
        "            if False:",
        CONFIG + "test_a_bad_setting_is_one_line_and_exit_2",
    ),
    Break(
        "a namespace with an empty part accepted",
        "vvv_core/config.py",
        "    if not NAMESPACE.fullmatch(value):",
        "    if not TOPIC_NAME.fullmatch(value):",
        CONFIG + "test_a_bad_setting_is_one_line_and_exit_2",
    ),
    Break(
        "a short console token accepted",
        "vvv_core/config.py",
        "    if value and (len(value) < 16 or not value.isprintable() or not value.strip()):",
        "    if False:",
        CONFIG + "test_a_bad_setting_is_one_line_and_exit_2",
    ),
    Break(
        "an oEmbed URL with a query accepted",
        "vvv_core/config.py",
        '    if "?" in value or "#" in value:',
        "    if False:",
        CONFIG + "test_a_bad_setting_is_one_line_and_exit_2",
    ),
    Break(
        "acks other than all accepted",
        "vvv_core/config.py",
        '    if key == "acks" and value.strip().lower() not in ACKNOWLEDGED:',
        "    if False:",
        CONFIG + "test_a_bad_setting_is_one_line_and_exit_2",
    ),
    Break(
        "the brokers named twice, differently, accepted",
        "vvv_core/config.py",
        "            if named[1] and named[1] != given.value:",
        "            if False:",
        CONFIG + "test_one_librdkafka_setting_given_twice_is_one_line_naming_both",
    ),
    Break(
        "an allowed host allowed on any port",
        "vvv_core/safe_http.py",
        "if target.port not in ports and not (None in ports and target.port == DEFAULT_PORTS[target.scheme]):",
        "if False:",
        "tests/test_safe_http.py::test_whatever_is_fetched_was_allowed",
    ),
    Break(
        "CGNAT treated as public",
        "vvv_core/safe_http.py",
        "        or ip in CGNAT\n",
        "",
        "tests/test_safe_http.py::test_internal_addresses_in_any_form_are_internal",
    ),
    Break(
        "the IPv4 inside 6to4 and Teredo addresses not looked at",
        "vvv_core/safe_http.py",
        "inside = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)",
        "inside = None",
        "tests/test_safe_http.py::test_internal_addresses_in_any_form_are_internal",
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
