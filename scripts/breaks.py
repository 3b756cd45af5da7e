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
import concurrent.futures
import contextlib
import os
import queue
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RUNTIME = "tests/test_runtime.py::"  # the runtime's broker-free tests (the in-memory backend)
BOUNDARIES = "tests/test_boundaries.py::"
CONFIG = "tests/test_config.py::"
CONSOLE = "tests/test_console.py::"
CONSOLE_ANSWERS = "tests/test_console_answers.py::"
SCOREBOARD = "tests/test_scoreboard.py::"
RATELIMIT = "tests/test_ratelimit.py::"  # the rate limiter's, on a virtual clock
STATE = "tests/test_state.py::"  # the state store's, on the same backend
EFFECTS = "tests/test_effects.py::"  # how results take effect in the cron database (broker-free)
OUTBOX = "tests/test_outbox.py::"
HOOK = "tests/test_hook.py::"
TRACING = "tests/test_tracing.py::"
TIMELINE = "tests/test_timeline.py::"
PROCESSES = "tests/test_processes.py::"
# Copied into the broken tree: the package, its tests and what the deployment tests read.
COPIED = (
    *("vvv_core", "tests", "pyproject.toml", "kafka/broker.properties", "deploy", "scripts"),
    *("README.md", "LICENSE", "Makefile", "docker-compose.yml", "Dockerfile", ".dockerignore", "registry/pom.xml"),
)


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
        'the member starts over."""\n',
        'the member starts over."""\n        self.checkpoint.advance(sync=True)\n',
        RUNTIME + "test_lost_partitions_commit_nothing",
    ),
    Break(
        "a commit due only by time, not after so many finished events",
        "vvv_core/runtime/checkpoint.py",
        "return self._since_commit >= COMMIT_EVERY or time.monotonic()",
        "return time.monotonic()",
        RUNTIME + "test_a_commit_is_due_after_so_many_finished_events_before_its_interval",
    ),
    Break(
        "a partition's lag series kept after the member gives it up",
        "vvv_core/runtime/loop.py",
        "self.metrics.forget_partitions([p for _t, p in partitions])",
        "pass",
        RUNTIME + "test_finished_work_is_committed_before_partitions_are_given_up",
    ),
    Break(
        "exactly-once switched off",
        "vvv_core/runtime/checkpoint.py",
        "self.exactly_once = backend.transactional",
        "self.exactly_once = False",
        RUNTIME + "test_exactly_once_commits_results_and_offsets_in_one_transaction",
    ),
    Break(
        "exactly-once committing the work of a partition lost inside its transaction",
        "vvv_core/runtime/loop.py",
        "        if self.checkpoint.abort():\n",
        "        if False:\n",
        RUNTIME + "test_exactly_once_never_commits_the_work_of_a_partition_lost_inside_its_transaction",
    ),
    Break(
        "exactly-once stopping the member on a transaction it could start over from",
        "vvv_core/runtime/loop.py",
        "                except TransactionAborted as exc:\n",
        "                except RecursionError as exc:\n",
        RUNTIME + "test_exactly_once_starts_over_after_an_abortable_failure_and_keeps_going",
    ),
    Break(
        "an abortable transaction failure on Apache Kafka taken for one that must stop the member",
        "vvv_core/runtime/backends/kafka.py",
        "if error.txn_requires_abort() and not error.fatal():",
        "if False:",
        "tests/test_multihost.py::test_scoring_on_two_worker_hosts_with_a_killed_member_and_a_pulled_cable_equals_database_mode",
        broker="kafka",
    ),
    Break(
        "a batch of results taking a text longer than a result may hold",
        "vvv_core/events.py",
        "_within(list(map(len, _present(field[f]))), 0, MAX_TEXT) for f in texts",
        "_within(list(map(len, _present(field[f]))), 0, MAX_TEXT + 1) for f in texts",
        "tests/test_events.py::test_a_batch_of_results_is_checked_as_each_of_its_records_would_be",
    ),
    Break(
        "a batch of results taking a stored flag that is not a bool",
        "vvv_core/events.py",
        '        and _types(c["stored"]) <= {bool}\n',
        "",
        "tests/test_events.py::test_a_batch_of_results_is_checked_as_each_of_its_records_would_be",
    ),
    Break(
        "a batch of results taking a NaN behind valid values",
        "vvv_core/events.py",
        "(total := sum(values)) == total and ",
        "",
        "tests/test_events.py::test_a_nan_behind_valid_values_is_refused_in_a_batch_as_alone",
    ),
    Break(
        "commit past an unfinished offset",
        "vvv_core/runtime/offsets.py",
        "position = self._open[0] if self._open else self._next",
        "position = self._next",
        RUNTIME + "test_never_commits_past_an_unfinished_event",
    ),
    Break(
        "a batch's offsets cleared at once when as many are finished as are open, whichever they are",
        "vvv_core/runtime/offsets.py",
        "if len(self._done) == len(self._open) and self._done.issuperset(self._open):",
        "if len(self._done) == len(self._open):",
        "tests/test_offsets.py::test_an_offset_finished_but_never_taken_lets_no_unfinished_one_be_committed",
    ),
    Break(
        "commit before the results are acknowledged",
        "vvv_core/runtime/checkpoint.py",
        "if not self._in_delivery or self.backend.unanswered():",
        "if not self._in_delivery:",
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
        "a fatal failure of a check dead-letters its event instead of stopping the member",
        "vvv_core/runtime/executors.py",
        "        if isinstance(answer, Fatal):\n            raise answer\n",
        "",
        RUNTIME + "test_a_fatal_failure_stops_the_member_and_its_event_is_neither_dead_lettered_nor_committed",
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
        "            self._send_again(self._refused)\n            return\n",
        "            pass\n",
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
    # -- faults: the broker, the database -------------------------------------------------------
    Break(
        "a consumer waits for a lost broker for ever",
        "vvv_core/runtime/backends/brokerwatch.py",
        "if away >= self.give_up_after:",
        "if False:",
        "tests/test_faults_crash.py::test_a_consumer_whose_broker_is_gone_says_so_briefly_and_exits",
        broker="any",
    ),
    Break(
        "invalid input (a bad setting) exits 1 like what may pass, not 2",
        "vvv_core/errors.py",
        '    kind = "invalid"\n    exit_code = 2\n',
        '    kind = "invalid"\n',
        "tests/test_cli.py::test_bad_configuration_is_named",
    ),
    Break(
        "a second signal waits for the graceful stop instead of exiting at once",
        "vvv_core/cli.py",
        "            os._exit(128 + signum)\n",
        "            return\n",
        "tests/test_faults_crash.py::test_second_signal_stops_at_once",
        broker="any",
    ),
    Break(
        "write transactions begun deferred (the sink's lookup of known videos misses the cron's open transaction)",
        "vvv_core/db.py",
        'conn.execute("BEGIN IMMEDIATE")',
        'conn.execute("BEGIN")',
        EFFECTS + "test_the_sink_finds_a_video_the_cron_adds_in_the_transaction_that_calls_the_hook",
    ),
    Break(
        "a read-only database taken by a consumer",
        "vvv_core/db.py",
        "if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):",
        "if False:",
        "tests/test_cli.py::test_missing_and_read_only_databases_are_clear_errors",
        broker="any",
    ),
    Break(
        "a file without the cron's tables written into",
        "vvv_core/db.py",
        "    for table in CRON_TABLES:  # before anything is written: a foreign file stays untouched\n"
        "        require_table(conn, table)\n",
        "",
        CONFIG + "test_a_file_that_is_not_the_cron_database_is_never_written",
    ),
    Break(
        "vvv replay moves the offsets of a group whose members the broker reports",
        "vvv_core/replay.py",
        "    if members:\n",
        "    if False:\n",
        "tests/test_operations.py::test_status_names_members_and_replay_refuses_a_running_group",
        broker="kafka",
    ),
    Break(
        "a locked database ends a consumer",
        "vvv_core/db.py",
        "            if not _locked(exc):\n                raise\n",
        "            raise\n",
        "tests/test_faults_crash.py::test_a_database_locked_past_every_busy_timeout_is_waited_out",
        broker="any",
    ),
    Break(
        "a consumer failed for good is not replaced",
        "vvv_core/runtime/backends/kafka.py",
        "                self._resubscribe = True\n            elif err.code() in kafka.MISSING:",
        "                pass\n            elif err.code() in kafka.MISSING:",
        "tests/test_faults_crash.py::test_broker_restart_empty_consumer_recovers_and_recreates_topics",
        broker="kafka",  # a KIP-848 member whose group vanished is failed for good: Apache Kafka restarted empty
    ),
    # -- the wire ---------------------------------------------------------------------------------
    Break(
        "the older schemas shipped in history/ not loaded (what older producers wrote is a dead letter)",
        "vvv_core/avro.py",
        'shipped = directory / "history"',
        'shipped = directory / "history.old"',
        "tests/test_avro.py::test_the_older_schemas_shipped_in_history_are_read_with_their_defaults",
    ),
    Break(
        "the compiled Avro writer's zig-zag wrong",
        "vvv_core/_avro.c",
        "uint64_t n = ((uint64_t)value << 1) ^ (uint64_t)(value >> 63);",
        "uint64_t n = (uint64_t)value << 1;",
        "tests/test_avro.py::test_the_compiled_writers_write_what_fastavro_writes",
    ),
    Break(
        "the batch reader takes a record with trailing bytes",
        "vvv_core/_avro.c",
        "if (got == fields && in.at != in.size) got = -1;",
        "",
        "tests/test_avro.py::test_the_batch_reader_reads_what_fastavro_reads_and_leaves_it_the_rest",
    ),
    Break(
        "a batch's counts checked against a looser bound than one event's",
        "vvv_core/events.py",
        "_within(_present(c[f]), 0, MAX_COUNT)",
        "_within(_present(c[f]), 0, MAX_COUNT + 1)",
        "tests/test_events.py::test_a_batch_is_checked_as_each_of_its_records_would_be",
    ),
    Break(
        "the hook's batch of new videos taking their regions as given, not upper-cased",
        "vvv_core/events.py",
        '        c["region"] = upper\n',
        '        c["region"] = v["region"]\n',
        "tests/test_events.py::test_the_hooks_batch_is_checked_as_each_of_its_items_would_be",
    ),
    Break(
        "the hook's batch of new videos counting true as a count",
        "vvv_core/events.py",
        "_TEXTS, _INTS = {str, NONE}, {int, NONE}",
        "_TEXTS, _INTS = {str, NONE}, {int, bool, NONE}",
        "tests/test_events.py::test_the_hooks_batch_is_checked_as_each_of_its_items_would_be",
    ),
    Break(
        "a title no encoder can write (a lone surrogate) taken as valid",
        "vvv_core/events.py",
        "    if not _utf8(value):\n",
        "    if False:\n",
        "tests/test_hook.py::test_a_title_no_encoder_can_write_is_rejected_and_holds_nothing_back",
        broker="any",
    ),
    Break(
        "the hook's batch of new videos taking a title no encoder can write",
        "vvv_core/events.py",
        'and _utf8("".join(v[f])) for f in ("title", "thumbnail_url"))',
        'for f in ("title", "thumbnail_url"))',
        "tests/test_events.py::test_the_hooks_batch_is_checked_as_each_of_its_items_would_be",
    ),
    Break(
        "a batch's regions taken lower case, unnormalised",
        "vvv_core/events.py",
        'VIDEO_IDS, REGIONS = (re.compile(rf"(?:{p.pattern}\\n)*{p.pattern}") for p in (VIDEO_ID, REGION))',
        'VIDEO_IDS, REGIONS = (re.compile(rf"(?:{p.pattern}\\n)*{p.pattern}", re.I) for p in (VIDEO_ID, REGION))',
        "tests/test_events.py::test_a_batch_is_checked_as_each_of_its_records_would_be",
    ),
    Break(
        "a batch of events or results made straight from ragged columns (the records past the shortest lost)",
        "vvv_core/events.py",
        "return len(set(map(len, columns.values()))) <= 1",
        "return True",
        "tests/test_events.py::test_a_batch_keeps_each_refusal_in_its_records_place_and_takes_no_ragged_columns",
    ),
    Break(
        "a video's state written unlike json.dumps writes it",
        "vvv_core/groups/scoring.py",
        """return f"[{', '.join(rows)}]".encode()""",
        """return f"[{','.join(rows)}]".encode()""",
        STATE + "test_a_state_is_written_as_json_dumps_writes_it",
    ),
    Break(
        "a replay of one dead letter leaves no marker (a later replay sends it again)",
        "vvv_core/dlq.py",
        'producer.produce(topic, None, d.key, headers=[(MARKER, f"{d.partition}/{d.offset}".encode())])',
        "pass",
        "tests/test_console.py::test_the_console_shows_the_pipeline_live_and_replays_a_dead_letter",
        broker="any",
    ),
    Break(
        "a replay of all dead letters leaves their position where it was (the next sends them again)",
        "vvv_core/dlq.py",
        "_commit_positions(settings, group, topic, ends)",
        "pass",
        "tests/test_faults_poison.py::test_dlq_list_and_replay_from_the_command_line",
        broker="any",
    ),
    # -- operating it ---------------------------------------------------------------------------
    Break(
        "a replay from the beginning starts at the end",
        "vvv_core/replay.py",
        "return {p: low for p, (low, _high) in marks.items()}",
        "return {p: high for p, (_low, high) in marks.items()}",
        "tests/test_operations.py::test_replay_from_the_beginning_and_from_a_time",
        broker="any",
    ),
    Break(
        "a replay from a time reads the time as seconds",
        "vvv_core/replay.py",
        "cutoff = int(since.timestamp() * 1000)",
        "cutoff = int(since.timestamp())",
        "tests/test_operations.py::test_replay_from_the_beginning_and_from_a_time",
        broker="any",
    ),
    Break(
        "a replay from a time trusts the broker's time index unchecked",
        "vvv_core/replay.py",
        "if asked is not None and kafka.first_at_or_after(settings, topic, cutoff, asked, marks):",
        "if asked is not None:",
        "tests/test_operations.py::test_replay_from_the_beginning_and_from_a_time",
        broker="embedded",  # Apache Kafka's time index is right: only a broker that answers wrongly tells
    ),
    # -- liveness ---------------------------------------------------------------------------------
    Break(
        "the rate limit is per member, not per group",
        "vvv_core/runtime/ratelimit.py",
        "self._assignment = (frozenset(owned), max(1, total))",
        "self._assignment = (frozenset(range(max(1, total))), max(1, total))",  # every member: every slot
        "tests/test_liveness.py::test_rate_limit_is_for_the_whole_group[2]",
        broker="any",
    ),
    # -- partitioning, the registry, the demo, the deployment examples -------------------------
    Break(
        "murmur2 switched back to librdkafka's default partitioner",
        "vvv_core/kafka.py",
        'PARTITIONER = "murmur2_random"',
        'PARTITIONER = "consistent_random"',
        "tests/test_partitioning.py::test_every_topic_the_project_writes_is_partitioned_as_the_java_producer_does",
        broker="kafka",
    ),
    Break(
        "the in-memory broker partitions by CRC32",
        "vvv_core/runtime/backends/memory.py",
        'return java_partition(key or b"", self.partitions)',
        'return __import__("zlib").crc32(key or b"") % self.partitions',
        "tests/test_partitioning.py::test_the_pure_python_murmur2_partitions_as_kafkas_java_producer",
        broker="kafka",
    ),
    Break(
        "a member's worker threads hold its process's exit",
        "vvv_core/runtime/executors.py",
        'name=f"{self._name}_{self._threads}", daemon=True)',
        'name=f"{self._name}_{self._threads}", daemon=False)',
        "tests/test_cli.py::test_a_results_only_member_whose_checks_hang_in_a_name_lookup_stops_within_the_stop_timeout",
        broker="embedded",
    ),
    Break(
        "the demo's stand-in choice mixed: liveness asks the configured endpoint",
        "vvv_core/demo.py",
        'oembed_url=f"{oembed.base_url}/oembed",',
        "oembed_url=settings.oembed_url,",
        "tests/test_cli.py::test_demo_never_mixes_stand_ins_with_real_endpoints",
    ),
    Break(
        "the demo's console not told the members it started",
        "vvv_core/demo.py",
        "serve(settings, groups, db_path, host, port, announce=announce, members=members)",
        "serve(settings, groups, db_path, host, port, announce=announce)",
        "tests/test_cli.py::test_demo_keeps_everything_up_with_its_console_and_stops_quietly_on_a_terminals_ctrl_c",
    ),
    Break(
        "vvv demo --db stores the stand-ins' verdicts in the user's file, not a copy",
        "vvv_core/demo.py",
        "            db_path = str(copy)\n",
        "            _kept_folder()\n",
        "tests/test_cli.py::test_demo_never_mixes_stand_ins_with_real_endpoints",
    ),
    Break(
        "vvv demo --db with a missing file not said in one line",
        "vvv_core/demo.py",
        "if db_path is not None and not Path(db_path).is_file():",
        "if False:",
        "tests/test_cli.py::test_demo_with_a_missing_database_says_how_to_build_one",
    ),
    Break(
        "the embedded broker outlives a vvv broker killed with SIGKILL",
        "vvv_core/broker.py",
        "ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)",
        "pass",
        "tests/test_faults_crash.py::test_killing_vvv_broker_kills_its_broker_too",
    ),
    Break(
        "the embedded broker takes a terminal's Ctrl-C itself (stops before the groups)",
        "vvv_core/broker.py",
        "            process_group=0,\n",
        "",
        "tests/test_cli.py::test_demo_keeps_everything_up_with_its_console_and_stops_quietly_on_a_terminals_ctrl_c",
    ),
    Break(
        "the README's extras line quotes the wheel's wildcard",
        "README.md",
        'pip install "$wheel[consumers]"  ',
        "pip install 'dist/viralvidvault_streams-*.whl[consumers]'",
        "tests/test_wheel.py::test_a_wheel_installs_into_a_fresh_venv_and_runs_the_pipeline_from_another_folder",
        broker="kafka",
    ),
    Break(
        "the compose image's permission check removed",
        "deploy/docker/start.sh",
        'if [ -n "$db" ]; then',
        "if false; then",
        "tests/test_deployment.py::test_the_entry_point_says_in_one_line_what_the_image_user_cannot_do_with_the_cron_database",
    ),
    Break(
        "the console's port published on every interface",
        "docker-compose.yml",
        '"${VIRALVIDVAULT_BIND:-127.0.0.1}:8765:8765"',
        '"8765:8765"',
        "tests/test_deployment.py::test_every_published_port_is_on_loopback_unless_the_operator_asks",
    ),
    Break(
        "compose runs with no cron data directory named (an empty folder mounted at /data)",
        "docker-compose.yml",
        '"${VIRALVIDVAULT_CRON_DIR:?set VIRALVIDVAULT_CRON_DIR',
        '"${VIRALVIDVAULT_CRON_DIR:-set VIRALVIDVAULT_CRON_DIR',
        "tests/test_deployment.py::test_compose_needs_the_cron_data_directory_and_its_variables_never_reach_the_containers",
    ),
    Break(
        "the compose file's scaling line names another service than the README's",
        "docker-compose.yml",
        "#   docker compose up -d --scale thumbnails=3",
        "#   docker compose up -d --scale scoring=3",
        "tests/test_deployment.py::test_the_scaling_line_is_true_and_the_same_in_the_file_and_the_readme",
    ),
    Break(
        "the systemd members of one group share one metrics port",
        "deploy/vvv-member",
        "--metrics-port $((9100 + 10 * place + n))",
        "--metrics-port $((9100 + 10 * place))",
        "tests/test_deploy_examples.py::test_the_systemd_template_runs_several_members_of_a_group_each_with_its_own_metrics_port",
    ),
    Break(
        "the sink's unit restarted after a bad setting (exit 2)",
        "deploy/vvv-sink.service",
        "RestartPreventExitStatus=2\n",
        "",
        "tests/test_deploy_examples.py::test_the_systemd_template_runs_several_members_of_a_group_each_with_its_own_metrics_port",
    ),
    Break(
        "a member's unit killed before its drain (TimeoutStopSec under the stop timeout)",
        "deploy/vvv-consume@.service",
        "TimeoutStopSec=20",
        "TimeoutStopSec=10",
        "tests/test_deploy_examples.py::test_the_systemd_template_runs_several_members_of_a_group_each_with_its_own_metrics_port",
    ),
    Break(
        "the set-up leaves the cron's data directory without group write",
        "deploy/setup.sh",
        'chmod 2770 "$root$cron_dir"',
        'chmod 2750 "$root$cron_dir"',
        "tests/test_deploy_examples.py::test_the_setup_script_makes_the_user_the_folders_and_the_venv_in_a_scratch_root",
    ),
    Break(
        "a Kubernetes worker killed before its drain (grace period under the stop timeout)",
        "deploy/kubernetes/workers.yaml",
        "      terminationGracePeriodSeconds: 30  # the drain",
        "      terminationGracePeriodSeconds: 5  # the drain",
        "tests/test_deploy_examples.py::test_the_kubernetes_example_has_what_an_operator_needs_and_runs_real_commands",
    ),
    Break(
        "a Kubernetes pod gets service links again",
        "deploy/kubernetes/workers.yaml",
        "      enableServiceLinks: false\n      terminationGracePeriodSeconds: 30  # the drain",
        "      terminationGracePeriodSeconds: 30  # the drain",
        "tests/test_deploy_examples.py::test_the_kubernetes_example_has_what_an_operator_needs_and_runs_real_commands",
    ),
    Break(
        "each command's help lists every setting again",
        "vvv_core/cli.py",
        "epilog=environment_help(reads),",
        "epilog=environment_help(),",
        "tests/test_help.py::test_every_setting_is_read_by_some_part_and_each_command_lists_its_own",
    ),
    Break(
        "a member's help leaves out the liveness settings it reads",
        "vvv_core/cli.py",
        'reads=("kafka", "topics", "schemas", "member", "scoring", "thumbnails", "liveness"),',
        'reads=("kafka", "topics", "schemas", "member", "scoring", "thumbnails"),',
        "tests/test_help.py::test_every_setting_is_read_by_some_part_and_each_command_lists_its_own",
    ),
    Break(
        "the registry's compatibility rule not set on the project's subjects",
        "vvv_core/registry.py",
        "self._client.set_compatibility(subject_name=subject, level=COMPATIBILITY)",
        "pass",
        "tests/test_registry.py::test_an_incompatible_schema_is_refused_by_the_registry_and_the_hooks_events_are_kept",
        broker="any",
    ),
    Break(
        "a producer asks the registry again at every call (its encoders not kept)",
        "vvv_core/avro.py",
        "        if (name, subject) not in self._encoders:\n",
        "        if True:\n",
        "tests/test_registry.py::test_a_producer_registers_each_schema_once_per_process_not_per_event",
        broker="any",
    ),
    Break(
        "registry-format messages framed without the schema id",
        "vvv_core/registry.py",
        'return REGISTRY_MAGIC + schema_id.to_bytes(4, "big")',
        "return REGISTRY_MAGIC + bytes(4)",
        "tests/test_registry.py::test_the_hook_and_every_group_write_the_registry_format_that_confluents_deserializer_reads",
        broker="any",
    ),
    # -- from statestore ----------------------------------------------------------------------
    Break(
        "offsets committed by the consumer instead of sent to the transaction",
        "vvv_core/runtime/checkpoint.py",
        "self.backend.send_offsets_to_transaction(positions)",
        "self.backend.commit(positions, True)",
        RUNTIME + "test_exactly_once_offsets_become_the_groups_only_when_its_transaction_commits",
    ),
    Break(
        "members read uncommitted records",
        "vvv_core/runtime/backends/memory.py",
        "transactional: bool = False, isolation: str = ISOLATION",
        'transactional: bool = False, isolation: str = "read_uncommitted"',
        RUNTIME + "test_a_member_never_processes_what_a_transaction_upstream_aborted_nor_what_it_has_not_committed",
    ),
    Break(
        "offsets committed by the consumer instead of sent to the transaction, on Apache Kafka",
        "vvv_core/runtime/backends/kafka.py",
        "self._producer.send_offsets_to_transaction(positions, group.consumer_group_metadata(), FLUSH_TIMEOUT)",
        "group.commit(offsets=positions, asynchronous=False)",
        "tests/test_scoring_e2e.py::test_a_member_dying_after_sending_its_offsets_but_before_its_commit_commits_neither",
        broker="kafka",
    ),
    Break(
        "a dead member's open transaction holds readers back for the client's default 60 s, not 10",
        "vvv_core/runtime/backends/kafka.py",
        "TRANSACTION_TIMEOUT_MS = 10_000",
        "TRANSACTION_TIMEOUT_MS = 60_000",
        "tests/test_scoring_e2e.py::test_a_dead_members_open_transaction_holds_readers_back_for_its_short_timeout_only",
        broker="kafka",
    ),
    Break(
        "members read uncommitted records, on Apache Kafka",
        "vvv_core/kafka.py",
        '"isolation.level": "read_committed",',
        '"isolation.level": "read_uncommitted",',
        "tests/test_scoring_e2e.py::test_what_a_transaction_upstream_aborted_is_never_processed",
        broker="kafka",
    ),
    Break(
        "no changelog write",
        "vvv_core/runtime/state/__init__.py",
        "self._changes.append(Change(partition, key, value))",
        "pass",
        STATE + "test_every_change_is_in_the_changelog_and_a_member_on_another_host_restores_it",
    ),
    Break(
        "restore skipped",
        "vvv_core/runtime/state/restore.py",
        "            self.state.restoring.add(tp)\n",
        "            self.backend.pause(False, [tp])\n",
        STATE + "test_every_change_is_in_the_changelog_and_a_member_on_another_host_restores_it",
    ),
    Break(
        "restore from the wrong position",
        "vvv_core/runtime/state/restore.py",
        "self.backend.restore(self.state.changelog_partition(tp), position)",
        "self.backend.restore(self.state.changelog_partition(tp), position + 1)",
        STATE + "test_a_partition_taken_back_is_restored_with_what_its_other_owner_did",
    ),
    Break(
        "a store past its changelog's end (the changelog made again) kept, not wiped and restored",
        "vvv_core/runtime/state/restore.py",
        "if store.position > high:",
        "if False:",
        STATE + "test_a_store_past_its_changelogs_end_is_wiped_and_restored_from_the_start",
    ),
    Break(
        "a damaged store stops the member instead of being wiped and restored",
        "vvv_core/runtime/state/__init__.py",
        "            PartitionStore.wipe(path)\n            store = PartitionStore(path)\n",
        "            raise\n",
        STATE + "test_a_damaged_store_is_wiped_and_restored_from_the_changelog",
    ),
    Break(
        "state kept across a revoke",
        "vvv_core/runtime/state/__init__.py",
        "            if (store := self.stores.pop(tp, None)) is not None:\n                store.close()\n",
        "            pass\n",
        STATE + "test_a_partition_taken_back_is_restored_with_what_its_other_owner_did",
    ),
    Break(
        "the store trusted after a crash under exactly-once (its changes saved before the commit)",
        "vvv_core/runtime/checkpoint.py",
        "if changes and self.exactly_once:",
        "if changes and False:",
        STATE + "test_under_exactly_once_a_store_is_never_ahead_of_what_was_committed",
    ),
    Break(
        "the store trusted after a crash under exactly-once, on Apache Kafka",
        "vvv_core/runtime/checkpoint.py",
        "if changes and self.exactly_once:",
        "if changes and False:",
        "tests/test_stream_scoring.py::test_a_crash_between_the_state_write_and_the_commit_never_leaves_a_store_ahead"
        "[commit]",
        broker="kafka",
    ),
    Break(
        "a video's first score of a batch stored, not its last",
        "vvv_core/groups/scoring.py",
        "            for e in effects\n",
        "            for e in reversed(effects)\n",
        STATE + "test_the_sink_stores_each_videos_latest_score_and_never_an_older_events",
    ),
    Break(
        "a late result of an older event replaces a video's score",
        "vvv_core/groups/scoring.py",
        " AND coalesce(virality_event_at, 0) <= ?4",
        "",
        STATE + "test_the_sink_stores_each_videos_latest_score_and_never_an_older_events",
    ),
    Break(
        "direct mode's snapshot index without the time (each video's snapshots all read and sorted)",
        "vvv_core/groups/scoring.py",
        '" ON video_snapshots (video_id, julianday(fetched_at))"',
        '" ON video_snapshots (video_id)"',
        "tests/test_scoring_e2e.py::test_direct_mode_reads_each_videos_newest_snapshots_through_its_index",
    ),
    Break(
        "an impossible video id asked about (liveness requests it)",
        "vvv_core/groups/liveness.py",
        "        if (rejected := invalid_id(video_id)) is not None:\n            return rejected\n",
        "",
        "tests/test_liveness.py::test_invalid_ids_are_rejected_without_a_request",
        broker="any",
    ),
    Break(
        "a result of the same event time as the stored score not applied (results before event_at are all 0)",
        "vvv_core/groups/scoring.py",
        " AND coalesce(virality_event_at, 0) <= ?4",
        " AND coalesce(virality_event_at, 0) < ?4",
        STATE + "test_the_sink_stores_each_videos_latest_score_and_never_an_older_events",
    ),
    Break(
        "a score of insufficient data or no time delta replaces the stored score",
        "vvv_core/groups/scoring.py",
        'if e.detail["reason"] is None',
        "if True",
        "tests/test_scoring_e2e.py::test_history_rules_on_a_real_database",
        broker="any",
    ),
    Break(
        "direct mode's history takes the earlier-inserted of two snapshots of one time",
        "vvv_core/groups/scoring.py",
        "                ORDER BY julianday(fetched_at) DESC, rowid DESC\n",
        "                ORDER BY julianday(fetched_at) DESC, rowid ASC\n",
        "tests/test_scoring_e2e.py::test_history_rules_on_a_real_database",
        broker="any",
    ),
    Break(
        "a restore ends at the last record it can read (high watermark - 1), not at the high watermark",
        "vvv_core/runtime/state/restore.py",
        "        if position < high:\n",
        "        if position < high - 1:\n",
        "tests/test_stream_scoring.py::test_a_restore_waits_for_a_transaction_open_on_its_changelog_and_status_shows_it",
        broker="kafka",
    ),
    Break(
        "the switch to stream mode seeds no history",
        "vvv_core/groups/scoring.py",
        "    for video_id, kept in history.items():\n",
        "    for video_id, kept in list(history.items())[:0]:\n",
        "tests/test_stream_scoring.py::"
        "test_seeding_the_changelog_switches_a_running_installation_to_stream_mode_losing_no_history",
        broker="any",
    ),
    Break(
        "the table holds the result just read, not the video's whole current state",
        "vvv_core/groups/sink.py",
        "[video_ids, scores, labels, thumbnails, liveness, events.now_ms()]",
        "[video_ids, scores, labels, [None] * len(rows), liveness, events.now_ms()]",
        "tests/test_sink.py::test_the_table_holds_each_videos_latest_score_thumbnail_and_liveness",
        broker="any",
    ),
    Break(
        "a member with a state store runs at-least-once when the setting says so",
        "vvv_core/runtime/loop.py",
        "transactional=settings.exactly_once or group.keeps_state,",
        "transactional=settings.exactly_once,",
        STATE + "test_a_member_with_a_state_store_runs_exactly_once_whatever_the_setting",
    ),
    # -- from mutants -------------------------------------------------------------------------
    Break(
        "a member sends in the slots of partitions it does not own",
        "vvv_core/runtime/ratelimit.py",
        "self._assignment = (frozenset(owned), max(1, total))",
        "self._assignment = (frozenset(range(total)), max(1, total))",
        RATELIMIT + "test_members_send_only_in_their_partitions_slots_never_in_the_same_one_and_use_them_all",
    ),
    Break(
        "a worker too late for its slot sends anyway",
        "vvv_core/runtime/ratelimit.py",
        "if time.time() - at <= self.late and slot % total in owned:",
        "if slot % total in owned:",
        RATELIMIT + "test_a_worker_waking_late_sends_up_to_a_fifth_of_a_slot_after_it_and_otherwise_in_its_next_slot",
    ),
    Break(
        "a worker may be late by a fifth of a slot however long the slot",
        "vvv_core/runtime/ratelimit.py",
        "self.late = min(LATE * self.interval, MOST_LATE)",
        "self.late = LATE * self.interval",
        RATELIMIT + "test_a_minute_never_holds_more_than_the_limit_however_late_workers_wake[1]",
    ),
    Break(
        "a stop does not end the wait for partitions",
        "vvv_core/runtime/ratelimit.py",
        "                if cancelled.is_set():\n                    return None\n",
        "",
        RATELIMIT + "test_a_stop_ends_the_wait_for_an_assignment",
    ),
    # -- from console -------------------------------------------------------------------------
    Break(
        "the console's answers not shared: every request makes its own",
        "vvv_core/console/answers.py",
        "        if answer is None or not answer.fresh(now):\n",
        "        if True:\n",
        CONSOLE_ANSWERS + "test_one_answer_per_interval_is_shared_by_every_request",
    ),
    Break(
        "the console's answers not shared between two tabs",
        "vvv_core/console/answers.py",
        "        if answer is None or not answer.fresh(now):\n",
        "        if True:\n",
        CONSOLE + "test_two_tabs_share_one_pipeline_answer",
        broker="any",
    ),
    Break(
        "a pipeline look opens clients of its own, not the console's kept open",
        "vvv_core/console/app.py",
        "status.group_status(settings, groups, readers[0], schemas, members)",
        "status.group_status(settings, groups, None, schemas, members)",
        CONSOLE + "test_two_tabs_share_one_pipeline_answer",
        broker="any",
    ),
    Break(
        "the console's clients left open at shutdown",
        "vvv_core/console/app.py",
        "await run_in_threadpool(readers.pop().close)",
        "readers.pop()",
        CONSOLE + "test_two_tabs_share_one_pipeline_answer",
        broker="any",
    ),
    Break(
        "a dead-letter search reads the topic again at each keystroke",
        "vvv_core/console/app.py",
        'answers.get(("dead-letters", group), 3,',
        'answers.get(("dead-letters", asked), 3,',
        CONSOLE + "test_two_tabs_share_one_pipeline_answer",
        broker="any",
    ),
    Break(
        "the console takes a replay from another origin",
        "vvv_core/console/app.py",
        "if origin is not None and origin != f\"{request.url.scheme}://{request.headers.get('host')}\":",
        "if False:",
        CONSOLE + "test_a_replay_without_the_token_or_from_another_site_is_refused",
        broker="any",
    ),
    Break(
        "the console on loopback answers a Host that is not loopback (DNS rebinding)",
        "vvv_core/console/app.py",
        "middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS)] if local else []",
        "middleware = []",
        CONSOLE + "test_a_replay_without_the_token_or_from_another_site_is_refused",
        broker="any",
    ),
    Break(
        "--public-views not said at the console's start",
        "vvv_core/console/app.py",
        "    if public_views and beyond:\n",
        "    if False:\n",
        CONSOLE + "test_bound_beyond_loopback_the_token_guards_every_view",
        broker="any",
    ),
    Break(
        "the console's page takes scripts from anywhere and may be framed",
        "vvv_core/console/app.py",
        "\"script-src 'self'; frame-ancestors 'none'\"",
        '"script-src *; frame-ancestors *"',
        CONSOLE + "test_the_page_allows_scripts_from_the_console_only_images_from_the_thumbnail_hosts_and_no_framing",
        broker="any",
    ),
    Break(
        "a view served without the token beyond loopback",
        "vvv_core/console/app.py",
        "if not (local or public_views or _has_token(request, token)):",
        "if not (local or public_views or True):",
        CONSOLE + "test_bound_beyond_loopback_the_token_guards_every_view",
        broker="any",
    ),
    Break(
        "a malformed replay body answered 500",
        "vvv_core/console/app.py",
        "group, matching = _replay_request(await request.body(), groups)",
        "group, matching = _replay_request(json.dumps(await request.json()).encode(), groups)",
        CONSOLE + "test_a_malformed_request_is_answered_400_with_its_reason",
        broker="any",
    ),
    Break(
        "a listing not bounded to its region's best",
        "vvv_core/scoreboard.py",
        "({best} LIMIT {LISTED}) AS l",
        "({best}) AS l",
        SCOREBOARD + "test_a_listing_sorted_by_any_column_is_paged_by_the_database",
    ),
    Break(
        "a listing sorted by score whatever was asked",
        "vvv_core/scoreboard.py",
        '        if self.column == "score":\n',
        "        if True:\n",
        SCOREBOARD + "test_a_listing_sorted_by_any_column_is_paged_by_the_database",
    ),
    Break(
        "a listing sorted by score whatever the page asked",
        "vvv_core/scoreboard.py",
        '        if self.column == "score":\n',
        "        if True:\n",
        CONSOLE + "test_the_listings_are_sorted_and_paged_by_the_database",
        broker="any",
    ),
    Break(
        "every page of a listing shows its first",
        "vvv_core/scoreboard.py",
        '"offset": (page - 1) * PAGE',
        '"offset": 0',
        SCOREBOARD + "test_a_listing_sorted_by_any_column_is_paged_by_the_database",
    ),
    Break(
        "the running counts miss rescores",
        "vvv_core/scoreboard.py",
        "AFTER UPDATE OF virality_score, region ON videos",
        "AFTER UPDATE OF region ON videos",
        SCOREBOARD + "test_the_running_counts_follow_every_write_to_the_scores",
    ),
    Break(
        "running counts missing one of their triggers trusted, not rebuilt",
        "vvv_core/scoreboard.py",
        'if "virality_score" in scored and not set(COUNTING_PARTS) <= made:',
        "if False:",
        SCOREBOARD + "test_the_running_counts_follow_every_write_to_the_scores",
    ),
    Break(
        "the console waits for the cron's write lock to make its counts and indexes",
        "vvv_core/scoreboard.py",
        'conn.execute(f"PRAGMA busy_timeout = {LOCK_WAIT_MS}")',
        "pass",
        SCOREBOARD + "test_the_cron_holding_its_lock_never_waits_for_the_console",
    ),
    Break(
        "the report writes counts and indexes into the cron database",
        "vvv_core/report.py",
        "with scoreboard.reading(db_path) as conn:",
        "with scoreboard.reading(db_path, prepare_first=True) as conn:",
        SCOREBOARD + "test_the_report_only_reads",
    ),
    # -- from boundaries ----------------------------------------------------------------------
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
        "if unknown := _unknown_videos(conn, [r.video_id for r in results if not r.stored]):",
        "if unknown := set():",
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
        "more than 5 redirects followed",
        "vvv_core/safe_http.py",
        "MAX_REDIRECTS = 5",
        "MAX_REDIRECTS = 6",
        "tests/test_safe_http.py::test_five_redirects_are_followed_and_a_sixth_is_not",
    ),
    Break(
        "the memory budget lets images decode past it",
        "vvv_core/memory.py",
        "while self.used + amount > self.capacity:",
        "while False:",
        "tests/test_thumbnails.py::test_decoding_stays_within_the_memory_budget",
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
    Break(
        "a scoped IPv6 address's refusal checked inside the try that takes it for a malformed host name",
        "vvv_core/safe_http.py",
        "        ip = ipaddress.ip_address(host)\n    except ValueError:",
        "        ip = ipaddress.ip_address(host)\n"
        '        if "%" in host:\n            raise Refused(f"malformed IP address {host!r}")\n'
        "    except ValueError:",
        "tests/test_safe_http.py::test_a_refused_url_says_why",
    ),
    # -- the console and the report ------------------------------------------------------------
    Break(
        "the console takes a replay without its token",
        "vvv_core/console/app.py",
        '    if not _has_token(request, token):\n        return "a replay needs',
        '    if False:\n        return "a replay needs',
        CONSOLE + "test_a_replay_without_the_token_or_from_another_site_is_refused",
        broker="any",
    ),
    Break(
        "equal scores in the report and console not ranked by the velocity behind them",
        "vvv_core/scoreboard.py",
        'BEST = "l.score DESC, l.velocity DESC, l.engagement DESC, l.video_id DESC"',
        'BEST = "l.score DESC, l.video_id DESC"',
        "tests/test_operations.py::test_the_summary_says_why_checks_could_not_answer_and_ranks_equal_scores",
    ),
    # -- settings --------------------------------------------------------------------------------
    Break(
        "settings' ranges not checked",
        "vvv_core/config.py",
        "            or (low is not None and value < low)\n            or (high is not None and value > high)\n",
        "",
        CONFIG + "test_a_bad_setting_is_one_line_and_exit_2",
    ),
    Break(
        "the cron host's install needs the consumers extra (the groups import the state store's lmdb)",
        "vvv_core/runtime/group.py",
        "if TYPE_CHECKING:  # the store needs lmdb",
        "if True:  # the store needs lmdb",
        "tests/test_wheel.py::test_a_wheel_installs_into_a_fresh_venv_and_runs_the_pipeline_from_another_folder",
        broker="embedded",
    ),
    # -- the sink ------------------------------------------------------------------------------
    Break(
        "the sink writes its effects and its offsets in two SQLite transactions",
        "vvv_core/groups/sink.py",
        '        conn.executemany(\n            "INSERT INTO vvv_sink_offsets',
        '        conn.execute("COMMIT")\n        conn.execute("BEGIN IMMEDIATE")\n'
        '        conn.executemany(\n            "INSERT INTO vvv_sink_offsets',
        EFFECTS + "test_the_sinks_effects_and_its_offsets_commit_together_or_not_at_all",
    ),
    Break(
        "the sink applies again a result its member stored itself",
        "vvv_core/groups/sink.py",
        "applied = [r for r in results if not r.stored]",
        "applied = results",
        EFFECTS + "test_the_sink_never_applies_a_result_its_member_stored_itself",
    ),
    Break(
        "a thumbnail check that overran every attempt called broken, not error",
        "vvv_core/groups/thumbnails.py",
        "gave_up = staticmethod(failed)",
        "gave_up = staticmethod(refused)",
        "tests/test_faults_crash.py::test_an_overrunning_check_is_abandoned_and_the_consumer_stays",
        broker="any",
    ),
    Break(
        "a repeated thumbnail result of the same event applied again",
        "vvv_core/groups/thumbnails.py",
        "excluded.event_id IS NOT thumbnail_checks.event_id",
        "1",
        EFFECTS + "test_a_repeated_result_of_the_same_event_changes_nothing[thumbnails]",
    ),
    Break(
        "a repeated liveness result of the same event applied again",
        "vvv_core/groups/liveness.py",
        "excluded.event_id IS NOT video_liveness.event_id",
        "1",
        EFFECTS + "test_a_repeated_result_of_the_same_event_changes_nothing[liveness]",
    ),
    Break(
        "an older thumbnail check replaces a newer verdict",
        "vvv_core/groups/thumbnails.py",
        "WHERE excluded.event_at > coalesce(thumbnail_checks.event_at, 0)",
        "WHERE 1",
        EFFECTS + "test_an_older_check_arriving_later_never_replaces_a_newer_verdict[thumbnails]",
    ),
    Break(
        "an older liveness check replaces a newer verdict",
        "vvv_core/groups/liveness.py",
        "AND (excluded.event_at > coalesce(video_liveness.event_at, 0)",
        "AND (1",
        EFFECTS + "test_an_older_check_arriving_later_never_replaces_a_newer_verdict[liveness]",
    ),
    Break(
        "an unknown liveness answer replaces a known status (a failed request marks a video)",
        "vvv_core/groups/liveness.py",
        "WHERE (excluded.status != 'unknown' OR video_liveness.status = 'unknown')\n  AND ",
        "WHERE ",
        EFFECTS + "test_a_videos_liveness_says_since_when_it_is_dead_and_an_unknown_answer_changes_nothing",
    ),
    Break(
        "a video's dead_since not cleared when it comes back",
        "vvv_core/groups/liveness.py",
        "CASE WHEN excluded.status = 'alive' THEN NULL",
        "CASE WHEN 0 THEN NULL",
        EFFECTS + "test_a_videos_liveness_says_since_when_it_is_dead_and_an_unknown_answer_changes_nothing",
    ),
    Break(
        "a video's dead_since moved to its latest dead answer, not its first",
        "vvv_core/groups/liveness.py",
        "ELSE coalesce(video_liveness.dead_since, excluded.dead_since) END",
        "ELSE excluded.dead_since END",
        EFFECTS + "test_a_videos_liveness_says_since_when_it_is_dead_and_an_unknown_answer_changes_nothing",
    ),
    Break(
        "the sink ignores the offsets it stored with its effects",
        "vvv_core/groups/sink.py",
        'rows = self.conn.execute("SELECT topic, partition, next_offset FROM vvv_sink_offsets").fetchall()',
        "rows = []",
        "tests/test_sink.py::test_a_sink_killed_at_any_instant_neither_loses_nor_repeats_an_effect",
        broker="any",
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
        "a piece refused whole (the broker, not its events) does not end the call",
        "vvv_core/outbox.py",
        "if sent.cut_off or (send and len(failed) == len(send)):",
        "if sent.cut_off:",
        OUTBOX + "test_a_refused_event_is_kept_ahead_with_its_videos_later_events_behind_it",
        broker="any",
    ),
    Break(
        "a drain that finds a backlog starts with a whole piece, not a small one",
        "vvv_core/outbox.py",
        "ramp = FIRST_PIECE if backlog.touched else MAX_PIECE",
        "ramp = MAX_PIECE",
        OUTBOX + "test_a_drain_to_the_end_says_how_far_it_got",
        broker="any",
    ),
    Break(
        "a drain's next piece more than twice the last one acknowledged",
        "vvv_core/outbox.py",
        "ramp = min(MAX_PIECE, 2 * len(piece))",
        "ramp = MAX_PIECE",
        OUTBOX + "test_a_drain_to_the_end_says_how_far_it_got",
        broker="any",
    ),
    Break(
        "a drain to the end waits its whole timeout for a broker that does not answer at all",
        "vvv_core/outbox.py",
        "timeout = max(0.1, min(CONNECT_TIMEOUT, deadline - time.monotonic()))",
        "timeout = max(0.1, deadline - time.monotonic())",
        OUTBOX + "test_a_drain_to_the_end_says_within_ten_seconds_that_no_broker_answers",
    ),
    Break(
        "a drain not ended by a stop between pieces",
        "vvv_core/outbox.py",
        "while (remaining := deadline - time.monotonic()) > 0 and not (stop and stop.is_set()):",
        "while (remaining := deadline - time.monotonic()) > 0:",
        OUTBOX + "test_a_stop_ends_a_drain_between_pieces_and_says_so",
        broker="any",
    ),
    Break(
        "an outbox segment of more than 10,000 events",
        "vvv_core/spool.py",
        "SEGMENT_MESSAGES = 10_000",
        "SEGMENT_MESSAGES = 100_000",
        OUTBOX + "test_a_segment_holds_at_most_ten_thousand_events_and_they_read_back_in_order",
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
        "what an older version recorded as published sent again by `vvv publish`",
        "vvv_core/published.py",
        "known[ids[i]] != _older_fingerprint(new, i)}",
        "True}",
        HOOK + "test_publish_sends_nothing_again_after_an_upgrade_changed_the_fingerprint",
        broker="any",
    ),
    Break(
        "an outbox file's mode left to the umask (0640), not opened up to its group",
        "vvv_core/spool.py",
        "            os.fchmod(fd, FILE_MODE)\n",
        "            pass\n",
        OUTBOX + "test_two_users_share_the_outbox_through_its_group",
        broker="any",
    ),
    Break(
        "published.db left for SQLite to create, its mode from the umask",
        "vvv_core/published.py",
        "        os.close(open_shared(self.path, os.O_RDWR))  # SQLite gives its -wal and -shm files the same mode\n",
        "",
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
    Break(
        "the hook keeps nothing when its events cannot be encoded",
        "vvv_core/hook.py",
        "            spool.write_records(records.rows())\n",
        "",
        HOOK + "test_whatever_breaks_after_the_hook_has_the_events_they_are_kept_and_delivered_later",
        broker="any",
    ),
    Break(
        "vvv publish sends again what the hook sent (the hook records nothing)",
        "vvv_core/hook.py",
        "    entry.write()  # delivered or kept, so published: `vvv publish` will not send them again\n",
        "",
        HOOK + "test_publish_and_the_hook_share_one_record_of_what_was_published",
        broker="any",
    ),
    Break(
        "vvv publish sends a stale check again within its age window",
        "vvv_core/hook.py",
        "_only(checked.stale, [v not in recent for v in stale_ids]),",
        "checked.stale,",
        HOOK + "test_publish_selects_stale_videos_once_per_age_window",
        broker="any",
    ),
    Break(
        "vvv publish takes a video for stale by its oldest snapshot, not its newest",
        "vvv_core/hook.py",
        "HAVING max(julianday(fetched_at)) < :before",
        "HAVING min(julianday(fetched_at)) < :before",
        HOOK + "test_publish_selects_stale_videos_once_per_age_window",
        broker="any",
    ),
    Break(
        "vvv publish knows a snapshot without its counts (a new one taken for published)",
        "vvv_core/published.py",
        '"thumbnail_url", "view_count", "likes", "comments")',
        '"thumbnail_url")',
        HOOK + "test_publish_publishes_each_new_snapshot_once",
        broker="any",
    ),
    Break(
        "a video rejected twice keeps only its last reason",
        "vvv_core/hook.py",
        'self.rejected[key] = reason if known is None or reason in known else f"{known}; {reason}"',
        "self.rejected[key] = reason",
        HOOK + "test_invalid_items_are_rejected_with_reasons_not_raised",
        broker="any",
    ),
    Break(
        "an item's id of any length shown as its key",
        "vvv_core/hook.py",
        "MAX_ID_SHOWN = 256",
        "MAX_ID_SHOWN = 1024",
        HOOK + "test_invalid_items_are_rejected_with_reasons_not_raised",
        broker="any",
    ),
    Break(
        "an unknown OTEL_TRACES_SAMPLER taken as always_on",
        "vvv_core/tracing.py",
        "    if name not in SAMPLERS:\n"
        "        raise ConfigError(f\"OTEL_TRACES_SAMPLER={name!r}: expected one of {', '.join(SAMPLERS)}\")\n"
        "    rate = SAMPLERS[name]\n",
        "    rate = SAMPLERS.get(name, 1.0)\n",
        TRACING + "test_the_sampler_variables_give_the_share_traced_and_a_bad_one_is_one_line_with_traces_off",
    ),
    Break(
        "a sampler's share above 1 taken",
        "vvv_core/tracing.py",
        "if not 0.0 <= rate <= 1.0:",
        "if not 0.0 <= rate:",
        TRACING + "test_the_sampler_variables_give_the_share_traced_and_a_bad_one_is_one_line_with_traces_off",
    ),
    Break(
        "a bad tracing variable raised from the process's set-up instead of said with traces off",
        "vvv_core/tracing.py",
        "            except ConfigError as exc:\n",
        "            except ImportError as exc:\n",
        TRACING + "test_the_sampler_variables_give_the_share_traced_and_a_bad_one_is_one_line_with_traces_off",
    ),
    Break(
        "OpenTelemetry set up without the OTEL_* variables",
        "vvv_core/tracing.py",
        "        if wanted(os.environ):\n",
        "        if True:\n",
        TRACING + "test_without_the_otel_variables_nothing_is_imported_and_no_header_is_written",
        broker="any",
    ),
    Break(
        "the traceparent not put on the hook's messages",
        "vvv_core/hook.py",
        "zip(repeat(topic), keys, values, headers)",
        "zip(repeat(topic), keys, values, repeat(None))",
        TRACING + "test_the_hook_puts_a_traceparent_on_every_event_and_a_span_on_each_sampled_one",
        broker="any",
    ),
    Break(
        "every event sampled, whatever the sampler says",
        "vvv_core/tracing.py",
        "            if trace_id[16:] >= bound:",
        "            if False:",
        TRACING + "test_events_not_sampled_carry_the_decision_and_make_no_span",
        broker="any",
    ),
    Break(
        "the outbox dropping headers",
        "vvv_core/spool.py",
        "framed = any(m.headers for m in chunk)",
        "framed = False",
        TRACING + "test_a_segment_keeps_its_headers_and_one_without_any_stays_in_the_first_format",
    ),
    Break(
        "outbox segments of the first format (no headers) no longer read",
        "vvv_core/spool.py",
        "not (framed or data.startswith(MAGIC))",
        "not framed",
        TRACING + "test_a_segment_keeps_its_headers_and_one_without_any_stays_in_the_first_format",
    ),
    Break(
        "attempts not traced",
        "vvv_core/runtime/executors.py",
        "span = self.spans.attempt(item, attempt) if self.spans is not None else None",
        "span = None",
        TRACING + "test_one_videos_trace_spans_the_hook_each_attempt_its_result_and_the_sink",
        broker="any",
    ),
    Break(
        "the context not carried from event to result",
        "vvv_core/runtime/checkpoint.py",
        "single += [(topic, v, k, h) for v, k, h in zip(values, keys, traced, strict=True) if v is not None]",
        "single += [(topic, v, k, None) for v, k, h in zip(values, keys, traced, strict=True) if v is not None]",
        TRACING + "test_one_videos_trace_spans_the_hook_each_attempt_its_result_and_the_sink",
        broker="any",
    ),
    Break(
        "a dead letter not carrying the trace of the attempt that made it",
        "vvv_core/runtime/checkpoint.py",
        "                headers = self.spans.headers(outcome, headers)\n",
        "                pass\n",
        TRACING + "test_replays_keep_the_trace",
        broker="any",
    ),
    Break(
        "a dead-letter replay drops the trace",
        "vvv_core/dlq.py",
        "own = [(k, v) for k, v in own if k != tracing.TRACEPARENT] + [(tracing.TRACEPARENT, traces.header(span))]",
        "own = [(k, v) for k, v in own if k != tracing.TRACEPARENT]",
        TRACING + "test_replays_keep_the_trace",
        broker="any",
    ),
    Break(
        "the timeline reading a whole topic instead of the key's partition",
        "vvv_core/timeline.py",
        "        (t, kafka.java_partition(key, len(topics[t].partitions)))\n        for t in decoders\n",
        "        (t, p)\n        for t in decoders\n        for p in (topics[t].partitions if t in topics else [])\n",
        TIMELINE + "test_a_videos_timeline_tells_its_whole_story_from_its_partitions_alone",
        broker="any",
    ),
    Break(
        "the timeline's window taken from the time index unchecked",
        "vvv_core/timeline.py",
        "wrong = {tp for tp in starts if by_time[tp] and not _window_starts_at(records.get(tp, []), index[tp], since)}",
        "wrong = set()",
        TIMELINE + "test_the_window_starts_where_the_time_index_says_once_checked",
        broker="embedded",
    ),
    Break(
        "a look at the ends giving up while a partition's leader is being elected",
        "vvv_core/kafka.py",
        "again = exc.args[0].retriable() or exc.args[0].code() in LEADER_MOVING",
        "again = exc.args[0].retriable()",
        TIMELINE + "test_a_look_at_the_ends_asks_again_while_a_partitions_leader_is_being_elected",
        broker="any",
    ),
    Break(
        "the timeline reading its whole window, not the newest records",
        "vvv_core/timeline.py",
        "starts[tp], by_time[tp] = max(start, high - most), usable and start >= high - most",
        "starts[tp], by_time[tp] = start, usable",
        TIMELINE + "test_a_partition_holding_more_than_the_bound_is_read_from_its_newest",
        broker="any",
    ),
    Break(
        "vvv timeline takes a window of more than a year",
        "vvv_core/cli.py",
        "    if value > 366:\n",
        "    if value > 3660:\n",
        CONFIG + "test_bad_flags_are_one_line_and_exit_2",
    ),
    Break(
        "the console's timeline takes a window of more than a year",
        "vvv_core/console/app.py",
        "if not 0 < window <= timeline.MOST_DAYS:",
        "if not 0 < window:",
        CONSOLE + "test_a_malformed_request_is_answered_400_with_its_reason",
        broker="any",
    ),
    Break(
        "the timeline page unguarded beyond loopback",
        "vvv_core/console/app.py",
        "if not (local or public_views or _has_token(request, token)):",
        'if not (local or public_views or _has_token(request, token) or declared is shown["timeline"]):',
        CONSOLE + "test_bound_beyond_loopback_the_token_guards_every_view",
        broker="any",
    ),
    Break(
        "a video's title shown unescaped in the report and the console",
        "vvv_core/views.py",
        "<td>{e(v.title)}</td>",
        "<td>{v.title}</td>",
        "tests/test_operations.py::test_report_is_a_self_contained_page_with_escaped_titles",
        broker="any",
    ),
    Break(
        "a thumbnail from any host shown in the report and the console",
        "vvv_core/views.py",
        'allowed = v.thumbnail_url and (urlsplit(v.thumbnail_url).hostname or "") in thumbnail_hosts',
        "allowed = v.thumbnail_url",
        "tests/test_operations.py::test_report_is_a_self_contained_page_with_escaped_titles",
        broker="any",
    ),
    Break(
        "a video in the results not linked to its timeline",
        "vvv_core/views.py",
        "<td>{_video(v.video_id, sortable)}</td>",
        "<td>{video_link(v.video_id)}</td>",
        CONSOLE + "test_a_videos_timeline_is_a_click_away_from_its_listing_and_its_dead_letter",
        broker="any",
    ),
    Break(
        "the unit's parent not forwarding SIGTERM to its members",
        "vvv_core/processes.py",
        "                member.send_signal(signum)\n",
        "                pass\n",
        PROCESSES + "test_sigterm_to_the_parent_stops_every_member_gracefully_commits_and_leaves_no_process",
        broker="any",
    ),
    Break(
        "a unit's member ending by itself leaves the others running",
        "vvv_core/processes.py",
        "                unexpected = True\n                forward(signal.SIGTERM)\n",
        "                unexpected = True\n",
        PROCESSES + "test_a_member_killed_makes_the_parent_stop_the_other_and_exit_non_zero",
        broker="any",
    ),
    Break(
        "the unit exits with its best member's code, not the worst",
        "vvv_core/processes.py",
        "worst = max(codes.values(), default=0)",
        "worst = min(codes.values(), default=0)",
        PROCESSES + "test_a_member_killed_makes_the_parent_stop_the_other_and_exit_non_zero",
        broker="any",
    ),
    Break(
        "with --until-idle, a unit's member idling out stops the unit",
        "vvv_core/processes.py",
        "(code != 0 or not until_idle)",
        "(code != 0 or until_idle)",
        PROCESSES + "test_two_processes_share_the_partitions_and_store_every_check_once",
        broker="any",
    ),
    Break(
        "a unit's members left running when the parent is killed",
        "vvv_core/processes.py",
        "ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)",
        "pass",
        PROCESSES + "test_the_members_stop_when_the_parent_is_killed",
        broker="any",
    ),
    Break(
        "a unit's members all serving metrics on the one port",
        "vvv_core/processes.py",
        '["--metrics-port", str(metrics_port + i)]',
        '["--metrics-port", str(metrics_port)]',
        PROCESSES + "test_sigterm_to_the_parent_stops_every_member_gracefully_commits_and_leaves_no_process",
        broker="any",
    ),
    Break(
        "a results-only member named direct in its client id (vvv status says so)",
        "vvv_core/runtime/group.py",
        'return "direct" if group.conn is not None else "results-only"',
        'return "direct"',
        "tests/test_sink.py::test_status_says_which_mode_each_group_runs_in",
        broker="kafka",
    ),
    Break(
        "vvv status guesses the retries waiting (0) where no member told",
        "vvv_core/status.py",
        "return None if not told or None in told else sum(told)",
        "return sum(t or 0 for t in told)",
        "tests/test_liveness.py::test_a_member_waiting_on_retries_says_so_and_status_counts_them",
        broker="embedded",
    ),
    Break(
        "a member whose work waits on retries says it has caught up (silence while it waits)",
        "vvv_core/runtime/loop.py",
        "if done == self._progress_done and not lag and not unfinished and not restoring:",
        "if done == self._progress_done and not lag:",
        "tests/test_liveness.py::test_a_member_waiting_on_retries_says_so_and_status_counts_them",
        broker="any",
    ),
    Break(
        "a transient failure not said at INFO",
        "vvv_core/runtime/executors.py",
        '        log.info(\n            "%s/%d@%d (%s): attempt %d of %d failed (%s): again in %g s",',
        '        log.debug(\n            "%s/%d@%d (%s): attempt %d of %d failed (%s): again in %g s",',
        "tests/test_liveness.py::test_a_member_waiting_on_retries_says_so_and_status_counts_them",
        broker="any",
    ),
    Break(
        "JSON log lines without the message's topic, partition and offset",
        "vvv_core/logs.py",
        'CONTEXT = ("group", "topic", "partition", "offset")',
        'CONTEXT = ("group",)',
        "tests/test_operations.py::test_json_logs_carry_group_topic_partition_and_offset",
        broker="any",
    ),
    Break(
        "a unit's members' log lines not naming their process",
        "vvv_core/cli.py",
        "logs.configure(args.verbose, args.log_json, process=unit)",
        "logs.configure(args.verbose, args.log_json)",
        PROCESSES + "test_the_members_stop_when_the_parent_is_killed",
        broker="any",
    ),
    Break(
        "--processes 65 taken",
        "vvv_core/processes.py",
        "MOST = 64",
        "MOST = 128",
        CONFIG + "test_bad_flags_are_one_line_and_exit_2",
    ),
    Break(
        "--processes 0 taken",
        "vvv_core/processes.py",
        "not 1 <= int(text) <= MOST",
        "not 0 <= int(text) <= MOST",
        CONFIG + "test_bad_flags_are_one_line_and_exit_2",
    ),
]


def markdown() -> str:
    """The README's table: one row a break (``tests/test_docs.py`` checks that every break has its row)."""
    rows = ["| break | file | caught by | broker |", "|---|---|---|---|"]
    rows += [f"| {b.what} | `{b.file}` | `{b.test}` | {b.broker or 'none'} |" for b in BREAKS]
    return "\n".join(rows)


def run_tests(tree: Path, tests: list[str], broker: tuple[str, str] | None, show: bool = False) -> bool:
    """True when ``tests`` pass against ``tree``; ``broker``: (kind, bootstrap) for tests that need one;
    ``show``: print pytest's summary when they fail."""
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
    if show and done.returncode != 0:
        print(done.stdout[-3000:], file=sys.stderr)
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


def copy_tree(into: Path) -> Path:
    """What the tests need of the checkout, copied (the fetched jars linked)."""
    for part in COPIED:
        source, target = ROOT / part, into / part
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
    for fetched in ("kafka/lib", "registry/lib"):  # the jars, where fetched: linked, not copied
        if (ROOT / fetched).is_dir():
            (into / fetched).parent.mkdir(parents=True, exist_ok=True)
            (into / fetched).symlink_to((ROOT / fetched).resolve())
    return into


def build_extension(tree: Path) -> tuple[Path, bytes]:
    """The compiled codec built again from the broken tree's C source; its unbroken build, to put back."""
    built = tree / f"vvv_core/_avro{sysconfig.get_config_var('EXT_SUFFIX')}"
    unbroken = built.read_bytes()
    compiler = [*sysconfig.get_config_var("CC").split(), "-shared", "-fPIC", "-O2"]
    include = ["-I", sysconfig.get_paths()["include"]]
    subprocess.run([*compiler, *include, "vvv_core/_avro.c", "-o", str(built)], cwd=tree, check=True)
    return built, unbroken


def try_break(trees: queue.Queue[Path], b: Break, kind: str | None, brokers: dict[str, str]) -> bool | None:
    """Whether the tests caught ``b`` (None: its code is not in its file exactly once), in a free tree."""
    tree = trees.get()
    try:
        path = tree / b.file
        original = path.read_text()
        if original.count(b.old) != 1:
            return None
        path.write_text(original.replace(b.old, b.new))
        built = build_extension(tree) if path.suffix == ".c" else None
        try:
            return not run_tests(tree, b.test.split(), None if kind is None else (kind, brokers[kind]))
        finally:
            path.write_text(original)
            if built is not None:
                built[0].write_bytes(built[1])
    finally:
        trees.put(tree)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run only the breaks whose description contains this")
    # Four at once on two cores: a break's run mostly waits (brokers, subprocesses, deadlines), at two the cores
    # stood half idle (load average 1), and the list grew past 330 runs
    parser.add_argument("--jobs", type=int, default=4, help="breaks tried at once, each in its own copy of the tree")
    parser.add_argument("--markdown", action="store_true", help="print the README's table of breaks, run nothing")
    args = parser.parse_args()
    if args.markdown:
        print(markdown())
        return 0
    chosen = [b for b in BREAKS if args.only in b.what]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vvv-breaks-") as tmp, contextlib.ExitStack() as stack:
        trees: queue.Queue[Path] = queue.Queue()
        for n in range(max(1, args.jobs)):
            trees.put(copy_tree(Path(tmp) / str(n)))
        brokers = start_brokers(
            stack, {k for b in chosen for k in (["embedded", "kafka"] if b.broker == "any" else [b.broker]) if k}
        )
        plan = [(b, kind) for b in chosen for kind in kinds(b, brokers)]
        # The unbroken tree first, its tests of each broker kind at once, each kind in a copy of its own (minutes
        # each, mostly waiting): a break is only caught if its test passes without it.
        copies = list(trees.queue)
        with concurrent.futures.ThreadPoolExecutor() as pool:
            unbroken = {
                kind: pool.submit(
                    run_tests,
                    copies[n % len(copies)],
                    sorted({t for b, k in plan if k == kind for t in b.test.split()}),
                    None if kind is None else (kind, brokers[kind]),
                    True,
                )
                for n, kind in enumerate(dict.fromkeys(kind for _b, kind in plan))
            }
        for kind, passed in unbroken.items():
            if not passed.result():
                print(f"breaks: the unbroken tree fails its own tests ({kind or 'no broker'})", file=sys.stderr)
                return 1
        missed = 0
        with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
            tries = {pool.submit(try_break, trees, b, kind, brokers): (b, kind) for b, kind in plan}
            for done in concurrent.futures.as_completed(tries):
                (b, kind), caught = tries[done], done.result()
                if caught is None:
                    print(f"breaks: {b.what}: the code to break is not in {b.file} exactly once", file=sys.stderr)
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
