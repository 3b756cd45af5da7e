"""The loop that drives one member of a consumer group: poll, decode, work, checkpoint.

Each turn: take a batch from the backend; decode and validate it a batch at a time (into columns
by the compiled reader, checked by column; what fails becomes a dead letter); hand valid events to
the group's executor; give finished outcomes to the checkpoint,
which owns the commit order (``checkpoint.py``); pause fetching while too much is unfinished.
The backend (``backends/``) wraps the client and the member's broker differences (the loop builds a
``KafkaBackend`` unless handed one, as tests hand the memory backend); the dead-letter policy
(``deadletter.py``) owns what a dead letter holds and when too many stop the member.
"""

from __future__ import annotations

import gc
import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from vvv_core import db, logs, tracing
from vvv_core.avro import SchemaStore
from vvv_core.config import Settings
from vvv_core.errors import InvalidInput
from vvv_core.events import InvalidEvent
from vvv_core.registry import schema_store
from vvv_core.runtime import metrics
from vvv_core.runtime.backends import Backend, Polled
from vvv_core.runtime.backends.kafka import KafkaBackend
from vvv_core.runtime.checkpoint import Checkpoint
from vvv_core.runtime.deadletter import DeadLetterPolicy
from vvv_core.runtime.group import ConsumerGroup, client_id
from vvv_core.runtime.model import ConsumerStopped, Failure, Inbound, Outcome, Partition, TransactionAborted
from vvv_core.runtime.state import State
from vvv_core.runtime.state.restore import Restorer

log = logging.getLogger(__name__)

POLL_TIMEOUT = 0.1  # seconds; also how often retries and time limits are looked at
OBSERVE_INTERVAL = 1.0  # seconds between refreshes of the lag and other gauges
GC_THRESHOLD = 100_000  # allocations between the collector's young collections
STALLED_JOIN = 60.0  # seconds waiting for an assignment before the log calls the group stuck


class GroupRunner:
    def __init__(
        self,
        group: ConsumerGroup,
        settings: Settings,
        *,
        until_idle: float | None = None,
        schemas: SchemaStore | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.group = group
        self.settings = settings
        self.until_idle = until_idle
        self.schemas = schemas or schema_store(settings)
        self._reader, self._fields = self.schemas.reader(group.event_schema), self.schemas.fields(group.event_schema)
        self.metrics = metrics.Metrics(group.name)
        self.log = logs.ContextLog(log, {"group": group.name})
        self.backend = backend or KafkaBackend(
            settings,
            group.name,
            self.log,
            # A state store runs transactional whatever the setting: at-least-once, a member cut off from the
            # broker could deliver a stale state to the changelog after its partitions moved, for compaction to keep.
            transactional=settings.exactly_once or group.keeps_state,
            stateful=group.keeps_state,
            client_id=client_id(group),
            statistics=self.metrics.statistics_callback if settings.metrics_port else None,
        )
        self.state = group.state = (
            State(Path(settings.state_dir) / settings.group_id(group.name), settings.changelog_topic(group.name))
            if group.keeps_state
            else None
        )
        self.restorer = Restorer(self.state, self.backend, self.log, settings.batch_size) if self.state else None
        self._held: list[Inbound] = []  # fetched from a partition before its restore paused it: processed after
        self.checkpoint = Checkpoint(
            self.backend,
            group,
            DeadLetterPolicy(
                group.name,
                settings.dead_letter_topic(group.name),
                group.input_topic(settings),
                settings.dlq_max_ratio,
                settings.max_message_bytes,
            ),
            self.metrics,
            self.schemas.encoder("Result", settings.results_topic),
            commit_interval=settings.commit_interval,
            results_topic=settings.results_topic,
            stopping=lambda: self._stopping,
            log=self.log,
            state=self.state,
        )
        traces = tracing.active()
        self.spans = self.checkpoint.spans = tracing.MemberSpans(traces, group.name) if traces else None
        self._stopping = False
        self._broken = False  # after a failure nothing more is committed: what was not, is redelivered
        self._total_partitions = settings.partitions
        self._joining_since: float | None = time.monotonic()  # waiting for an assignment since then
        self._last_message = time.monotonic()
        self._observed = 0.0
        self._paused = False
        self._progress_at = time.monotonic()  # the last progress line, and what was done by then
        self._progress_done = 0
        self._caught_up = False

    def stop(self) -> None:
        """Ask the loop to stop gracefully (safe from a signal handler or another thread)."""
        self._stopping = True

    @property
    def owned(self) -> list[Partition]:
        return list(self.checkpoint.partitions)

    @property
    def processed(self) -> int:
        return self.checkpoint.processed

    @property
    def dead_lettered(self) -> int:
        return self.checkpoint.dead_lettered

    def run(self) -> None:
        group, settings = self.group, self.settings
        db.wait_out_lock(group.prepare, "creating tables", lambda: self._stopping)
        # What start-up made (modules, schemas, settings) lives for ever: the collector stops walking
        # it each time the per-event objects set it off.
        gc.freeze()
        # A batch's objects (a few per event, no cycles among them) are freed by their counts when it is done;
        # at the default threshold (700) the collector ran every seventy events to find no garbage, 10 % of a
        # member's CPU (measured: 30.5-33.9 against 27.6-28.5 µs an event). Cycles are still collected.
        gc.set_threshold(GC_THRESHOLD)
        # First what can fail without leaving a client behind (a port in use): a consumer that is
        # never closed blocks the interpreter's exit (rd_kafka_destroy from the garbage collector).
        stop_serving = metrics.serve(self.metrics, settings.metrics_port) if settings.metrics_port else None
        self.executor = group.executor()
        self.executor.spans = self.spans
        self.metrics.watch(self.executor)
        try:
            self.backend.subscribe(group.input_topic(settings), self)
            while not self._stopping:
                restoring = self.state is not None and bool(self.state.restoring)
                self._accept(self.backend.poll(settings.batch_size, 0 if restoring else POLL_TIMEOUT))
                if restoring:
                    self._restore()
                self.checkpoint.add(self.executor.take_completed())
                try:
                    self.checkpoint.advance()
                except TransactionAborted as exc:
                    self._start_over(str(exc))
                self._backpressure()
                self._observe()
                self._progress()
                self.backend.watch()
                if self._idle():
                    self.log.info("%s: idle for %.1f s with everything consumed: stopping", group.name, self.until_idle)
                    break
            self.metrics.ready = False
            self._drain()
        except BaseException:
            self._broken = True
            raise
        finally:
            if stop_serving is not None:
                stop_serving()
            self.executor.close()
            group.close()
            self.backend.close()
            if self.state is not None:  # whatever the backend revoked on closing, or not (a failure)
                self.state.close(list(self.state.stores))
        self.log.info("%s: stopped after %d events (%d dead-lettered)", group.name, self.processed, self.dead_lettered)

    def _accept(self, polled: Polled) -> None:
        records = polled.records
        if self.state is not None and self.state.restoring:  # fetched before the pause took: its state is not there
            self._held += [i for i in records if (i.topic, i.partition) in self.state.restoring]
            records = [i for i in records if (i.topic, i.partition) not in self.state.restoring]
        items = self.checkpoint.take(records)
        valid, rejected = [], []
        for item, event in zip(items, self._parse(items), strict=True):
            if not isinstance(event, InvalidInput) and item.key != event.video_id.encode():
                event = InvalidEvent(f"key {item.key!r:.40} does not match video_id {event.video_id!r}")
            if isinstance(event, InvalidInput):
                self.log.warning(
                    "%s: dead-lettering %s/%d@%d: %s",
                    self.group.name,
                    item.topic,
                    item.partition,
                    item.offset,
                    event,
                    extra=logs.where(self.group.name, item.topic, item.partition, item.offset),
                )
                rejected.append(Outcome(item, failure=Failure.of(event)))
            else:
                item.event = event
                valid.append(item)
        for tp in polled.eof:  # after the records: taking one clears its partition's flag
            if offsets := self.checkpoint.partitions.get(tp):
                offsets.eof = True
        if polled.records:
            self._last_message = time.monotonic()
            self.metrics.consumed.labels(self.group.name).inc(len(polled.records))
        if self.spans is not None:  # the traces sampled among those taken, from their headers
            self.spans.take([*valid, *(o.inbound for o in rejected)])
        self.checkpoint.add(rejected)
        self.executor.submit(valid)

    def _parse(self, items: list[Inbound]) -> list[Any]:
        """Each message's event, or the InvalidInput saying why it has none, a batch at a time: the values read
        into columns by the compiled reader; what it cannot read whole (another writer schema, the registry's wire
        format, damaged bytes) by fastavro, one by one, or refused; then the group's checks on the columns."""
        values = [item.value for item in items]
        columns, others = self._reader.columns(values)
        failed: dict[int, InvalidInput] = {}
        for i in others:
            try:
                record = self.schemas.decode(values[i], self.group.event_schema)
            except InvalidInput as exc:
                failed[i] = exc
                continue
            for name, column in zip(self._fields, columns, strict=True):
                column[i] = record[name]
        if failed:
            columns = [[v for i, v in enumerate(column) if i not in failed] for column in columns]
        parsed = self.group.parse_events(dict(zip(self._fields, columns, strict=True)))
        if not failed:
            return parsed
        rest = iter(parsed)
        return [failed[i] if i in failed else next(rest) for i in range(len(items))]

    def _restore(self) -> None:
        """A step of the partitions' restores; what was held back of those finished now is processed."""
        finished = self.restorer.step(POLL_TIMEOUT)
        if finished and self._held:
            held = [i for i in self._held if (i.topic, i.partition) in finished]
            self._held = [i for i in self._held if (i.topic, i.partition) not in finished]
            self._accept(Polled(held))

    def _backpressure(self) -> None:
        """Pause fetching while too much is unfinished; resume once enough has finished."""
        busy = self.executor.in_flight() >= self.group.max_in_flight()
        if busy == self._paused:
            return
        self.backend.pause(busy)
        self._paused = busy
        if busy:
            for offsets in self.checkpoint.partitions.values():
                offsets.eof = False  # unknown while paused: the fetch after resuming tells again
        else:
            self._last_message = time.monotonic()

    def _observe(self) -> None:
        """Loop-level metrics: alive, ready, partitions, lag."""
        now = time.monotonic()
        m, name = self.metrics, self.group.name
        m.last_loop = now
        m.ready = bool(self.checkpoint.partitions) and self.backend.reachable
        if now - self._observed < OBSERVE_INTERVAL:
            return
        self._observed = now
        if self._joining_since is not None and now - self._joining_since >= STALLED_JOIN:
            self.log.warning(
                "%s: no assignment for %.0f s: the group's rebalance does not complete. On the embedded broker "
                "(tansu) members that leave while their group rebalances can wedge the group for good: restart "
                "the broker",
                name,
                now - self._joining_since,
            )
            self._joining_since = now  # said again in a minute, if still waiting
        m.partitions.labels(name).set(len(self.checkpoint.partitions))
        if self.state is not None:
            m.restoring.labels(name).set(len(self.state.restoring))
            m.restore_left.labels(name).set(self.restorer.left() or 0)
        for tp, lag in self._lags().items():
            if lag is not None:
                m.lag.labels(name, str(tp[1])).set(lag)
        for tp, offsets in self.checkpoint.partitions.items():
            high = self.backend.high_watermark(tp)
            if high is not None and offsets.committed is not None:
                m.committed_lag.labels(name, str(tp[1])).set(max(0, high - offsets.committed))

    def _lags(self) -> dict[Partition, int | None]:
        """Per owned partition, events behind the log end from this member's position; None before its
        first fetch: no figure rather than a wrong one. A fetch that gave nothing found it at its end."""
        lags: dict[Partition, int | None] = {}
        for tp, offsets in self.checkpoint.partitions.items():
            high = self.backend.high_watermark(tp)
            position = next((p for p in (offsets.position, offsets.committed, high) if p is not None), None)
            lags[tp] = None if high is None else max(0, high - position)
        return lags

    def lag(self) -> int | None:
        """Events behind the log end on the partitions this member owns; None until every one is known."""
        lags = list(self._lags().values())
        return None if not lags or None in lags else sum(lags)

    def _progress(self) -> None:
        """A line every ``progress_interval`` while there is work: never minutes of silence (retries,
        rate-limit slots); one line when it has caught up, then quiet until work comes again."""
        interval, now = self.settings.progress_interval, time.monotonic()
        if not interval or now - self._progress_at < interval or not self.checkpoint.partitions:
            return
        done, lag = self.processed, self.lag()
        retrying, slots = self.executor.waiting()
        unfinished = self.executor.in_flight()
        restoring = len(self.state.restoring) if self.state is not None else 0
        if done == self._progress_done and not lag and not unfinished and not restoring:
            if not self._caught_up:
                self.log.info("%s: caught up: %d events done, nothing waiting", self.group.name, done)
            self._caught_up = True
            self._progress_at = now
            return
        rate = (done - self._progress_done) / (now - self._progress_at)
        eta = f"about {timedelta(seconds=round(lag / rate))} to drain at this rate" if lag and rate else ""
        if restoring:
            left = self.restorer.left()
            eta += (
                f"{'; ' if eta else ''}{restoring} partitions restoring, {'?' if left is None else left} records left"
            )
        self.log.info(
            "%s: %d events done (%.1f/s), %d in progress, %d waiting to retry, %d waiting for a rate-limit "
            "slot, lag %s%s",
            self.group.name,
            done,
            rate,
            self.executor.running(),
            retrying,
            slots,
            "?" if lag is None else lag,
            f" ({eta})" if eta else "",
        )
        self._progress_at, self._progress_done, self._caught_up = now, done, False

    def _idle(self) -> bool:
        if self.until_idle is None or not self.checkpoint.partitions:
            return False
        if self.executor.in_flight() or self.checkpoint.delivering or (self.state and self.state.restoring):
            return False
        if not all(o.eof and not o.unfinished for o in self.checkpoint.partitions.values()):
            return False
        return time.monotonic() - self._last_message >= self.until_idle

    def _drain(self) -> None:
        """Graceful stop: fetch nothing new, let running work finish within the stop timeout, commit."""
        deadline = time.monotonic() + self.settings.stop_timeout
        self.backend.pause(True)
        while self.executor.running() and time.monotonic() < deadline:
            self.backend.poll(self.settings.batch_size, POLL_TIMEOUT)  # heartbeats go on; nothing arrives
            self.checkpoint.add(self.executor.take_completed())
            self.checkpoint.advance()
        self.checkpoint.add(self.executor.take_completed())
        self.checkpoint.advance(sync=True)
        if self.executor.in_flight():
            self.log.info(
                "%s: abandoned %d unfinished events; they are redelivered on restart",
                self.group.name,
                self.executor.in_flight(),
            )

    # -- rebalancing (called by the backend from inside poll) -----------------------------

    def assigned(self, partitions: list[Partition], total: int) -> None:
        if self.restorer is not None:  # first: a partition is never owned without its restore under way
            self.restorer.start(partitions)
        self.checkpoint.assign(partitions)
        self._total_partitions = total
        self._joining_since = None
        self._last_message = time.monotonic()
        self.group.on_assignment(sorted(p for _t, p in self.checkpoint.partitions), total)

    def revoked(self, partitions: list[Partition]) -> None:
        if not self._broken:
            try:
                self.checkpoint.advance(sync=True)  # finished work is committed; unfinished work is the next owner's
            except ConsumerStopped as exc:  # e.g. the broker is away: the next owner redoes what is uncommitted
                if self.checkpoint.exactly_once:  # the transaction held the partitions kept too
                    self.checkpoint.abort()
                    self._start_over(f"could not commit before giving up partitions: {exc}")
                    return
                self.log.warning("%s: could not commit before giving up partitions: %s", self.group.name, exc)
                self.checkpoint.abandon_deliveries()
        self._release(partitions)

    def lost(self, partitions: list[Partition]) -> None:
        """Taken away: commit nothing (another member may own them already).

        With exactly-once an open transaction holds their work since the last commit: committed, it would
        publish that work beside the new owner's, with no offsets of theirs in it for the group to refuse. It
        is aborted, and as it held the kept partitions' work too, the member starts over."""
        if self.checkpoint.abort():
            self._start_over(f"lost {', '.join(f'{t}[{p}]' for t, p in partitions)} inside a transaction: aborted")
        else:
            self._release(partitions)

    def _start_over(self, why: str) -> None:
        """Exactly-once, after an abort: the transaction's results, state changes and offsets are gone, and they
        were all the assignment's work since the last commit. Every partition is given up (its stores closed,
        their changes not saved dropped) and the group joined again, so the work restarts from the committed
        offsets and the stores from their changelogs, as Kafka Streams does when its tasks migrated."""
        self.log.warning("%s: %s: giving up every partition and joining the group again", self.group.name, why)
        self._release(self.owned)
        self.backend.rejoin()

    def _release(self, partitions: list[Partition]) -> None:
        """Drop the partitions' work and state."""
        self.executor.forget(set(partitions))
        self.checkpoint.release(partitions)
        if self.spans is not None:
            self.spans.forget(set(partitions))
        if self.restorer is not None:  # what it saved stays; the next owner restores the rest
            self.restorer.stop(partitions)
            self._held = [i for i in self._held if (i.topic, i.partition) not in set(partitions)]
        self.metrics.forget_partitions([p for _t, p in partitions])
        if not self.checkpoint.partitions:  # a rebalance is under way: waiting for the next assignment
            self._joining_since = time.monotonic()
        self.group.on_assignment(sorted(p for _t, p in self.checkpoint.partitions), self._total_partitions)
