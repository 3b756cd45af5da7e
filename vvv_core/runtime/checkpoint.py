"""The commit order, in one place: SQLite effects → results and dead letters → acknowledgements → offsets.

``advance`` runs once per loop turn:

1. the outcomes finished since the last turn have their SQLite effects written, in one
   transaction, and their results (or dead letters) handed to the producer;
2. an outcome's offset counts as finished only once the broker has acknowledged every message
   of its turn and of the turns before it (the producer reports refusals only, where no state store
   needs the offsets: turns in flight are settled together once none is unanswered, before the next
   turn's messages join them); after a refusal everything in flight is sent again, by a new producer;
3. on the commit policy (every ``VVV_COMMIT_INTERVAL`` seconds or ``COMMIT_EVERY`` outcomes), and
   always before partitions are given up or the member stops, each owned partition's offset is
   committed up to its first unfinished event.

With exactly-once (the backend is ``transactional``: one flag, the backend's) the same steps run
inside a Kafka transaction opened at the first message after a commit: step 3 sends the offsets
to the transaction, never commits them through the consumer, and commits it, so results, dead
letters and offsets become visible together or not at all; a refused message aborts it (the
member stops).

A group that keeps state (``state/``) has its changes sent in the same batch as its results, to
the changelog partition of the input they came from, so inside the same transaction. A batch's
changes are saved to the local stores only once they are in the changelog for good: acknowledged
(at-least-once), or their transaction committed (exactly-once). A store is never ahead.

A crash anywhere repeats work since the last commit and never skips an event: the SQLite
writes are idempotent upserts, each result carries its source event's id, and applying a
snapshot to a state twice changes nothing.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from itertools import groupby
from operator import attrgetter

from vvv_core import db
from vvv_core.avro import Encoder
from vvv_core.events import now_ms
from vvv_core.runtime.backends import FLUSH_TIMEOUT, Backend
from vvv_core.runtime.deadletter import DeadLetterPolicy
from vvv_core.runtime.group import ConsumerGroup
from vvv_core.runtime.metrics import Metrics
from vvv_core.runtime.model import (
    ConsumerStopped,
    Failure,
    Inbound,
    Outcome,
    Partition,
    Rejected,
)
from vvv_core.runtime.offsets import PartitionOffsets
from vvv_core.runtime.state import Change, State
from vvv_core.tracing import MemberSpans

DELIVERY_ATTEMPTS = 5  # a batch the broker refused is sent again, by a new producer, this often
COMMIT_EVERY = 10_000  # outcomes finished that make a commit due sooner
SETTLE_WAIT = 1.0  # seconds a commit due waits for the broker to answer what is in flight
RESULT_NAMESPACE = "com.viralvidvault.results"
# What a group's store raises when an event's own values cannot be stored (a binding its detail lacks, an
# integer past SQLite's, a constraint): that event is dead-lettered. Not OperationalError: a missing table
# or a full disk is the database's fault, and stops the member.
STORE_INPUT_ERRORS = (
    sqlite3.ProgrammingError,
    sqlite3.InterfaceError,
    sqlite3.IntegrityError,
    sqlite3.DataError,
    ValueError,
    TypeError,
    KeyError,
    OverflowError,
)

log = logging.getLogger(__name__)
_partition = attrgetter("topic", "partition")


def _outcome_partition(outcome: Outcome) -> Partition:
    return outcome.inbound.topic, outcome.inbound.partition


class _InDelivery:
    """One turn's outcomes (and state changes), sent and not settled yet."""

    __slots__ = ("attempt", "changes", "outcomes")

    def __init__(self, outcomes: list[Outcome], changes: list[Change], attempt: int = 1) -> None:
        self.outcomes = outcomes
        self.changes = changes
        self.attempt = attempt


class Checkpoint:
    def __init__(
        self,
        backend: Backend,
        group: ConsumerGroup,
        dead_letters: DeadLetterPolicy,
        metrics: Metrics,
        encode_result: Encoder,
        *,
        commit_interval: float,
        results_topic: str,
        stopping: Callable[[], bool],
        log: logging.LoggerAdapter,
        state: State | None = None,
    ) -> None:
        self.backend = backend
        self.group = group
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.exactly_once = backend.transactional
        self.commit_interval = commit_interval
        self.partitions: dict[Partition, PartitionOffsets] = {}  # for one assignment: made on assign, dropped on revoke
        self._encode_result = encode_result
        self._detail_type = f"{RESULT_NAMESPACE}.{group.detail_schema}"
        self._results_topic = results_topic
        self._stopping = stopping
        self.log = log
        self._finished: list[Outcome] = []  # since the last turn
        self._done_before: dict[Partition, int] = {}
        self._in_delivery: list[_InDelivery] = []  # sent, in order; settled together once every answer is in
        self._refused: str | None = None  # why the broker refused a message in flight
        self._changelog_next: dict[int, int] = {}  # changelog partition -> one past the last offset it took
        backend.on_delivery = self._answer
        self._in_transaction = False
        self.state = state
        self._in_transaction_changes: list[Change] = []  # sent in the open transaction, saved once it commits
        self._last_commit = time.monotonic()
        self._since_commit = 0
        self.processed = 0
        self.dead_lettered = 0
        self.spans: MemberSpans | None = None  # with tracing on: what each result and dead letter carries on

    # -- the assignment -------------------------------------------------------------------

    def assign(self, partitions: list[Partition]) -> None:
        # Added to, not replaced: incremental protocols assign a few partitions at a time.
        self._done_before.update(self.group.start_offsets(partitions))  # a group keeping offsets with its effects
        for tp in partitions:
            self.partitions[tp] = PartitionOffsets()

    def release(self, partitions: list[Partition]) -> None:
        for tp in partitions:
            self.partitions.pop(tp, None)
            self._done_before.pop(tp, None)

    def take(self, items: list[Inbound]) -> list[Inbound]:
        """Events taken from their partitions, in order; those to process: not of a partition revoked since they
        were fetched, nor already in the database (a group keeping its offsets with its effects)."""
        kept: list[Inbound] = []
        for partition, run in groupby(items, _partition):  # a poll's messages come in runs of one partition
            if (offsets := self.partitions.get(partition)) is None:
                continue
            run = list(run)
            offsets.take_all([i.offset for i in run])
            done_before = self._done_before.get(partition, 0)
            if run[0].offset < done_before:  # its effect is already in the database
                offsets.finish_all([i.offset for i in run if i.offset < done_before])
                run = [i for i in run if i.offset >= done_before]
            kept += run
        return kept

    def add(self, outcomes: list[Outcome]) -> None:
        """Finished events, dead letters included; judged by the dead-letter policy before anything is sent."""
        if outcomes:
            self.dead_letters.judge(o.failure is not None for o in outcomes)
            self._finished.extend(outcomes)

    @property
    def delivering(self) -> bool:
        return bool(self._in_delivery)

    # -- the order ------------------------------------------------------------------------

    def advance(self, sync: bool = False) -> None:
        """One turn: settle what the broker answered, commit when due, then store and send what finished since
        (a turn's answers come in while the next batch is worked on). ``sync`` (revocation, stop) sends first,
        waits for every answer and commits now."""
        if sync:
            self._write_and_send()
        due = sync or self._commit_due()
        # A commit due waits for what is in flight, as a Quix checkpoint flushes its producer: answers are
        # settled only all at once (``_settle``), so a broker always a little behind would hold every offset.
        self.backend.deliver((FLUSH_TIMEOUT if sync else SETTLE_WAIT) if due and self._in_delivery else 0)
        self._settle()
        if sync and self._in_delivery:
            raise ConsumerStopped(
                f"the broker did not acknowledge {self.backend.unanswered()} result messages within "
                f"{FLUSH_TIMEOUT:g} s: stopping without committing them; they are processed again on restart"
            )
        if due:
            self._commit(wait=sync)
        if not sync:
            self._write_and_send()

    def abandon_deliveries(self) -> None:
        """Forget what the broker never answered (the next owner redoes it)."""
        self._in_delivery.clear()  # they are still unanswered: every later batch waits for them too

    def abort(self) -> bool:
        """Exactly-once: abort the open transaction, if there is one, and forget what it held; whether there was."""
        if not self._in_transaction:
            return False
        self.backend.abort_transaction()
        self._void()
        return True

    def _void(self) -> None:
        """After an abort nothing of the transaction is delivered, saved or committed (the backend reports no
        refusal for the messages an abort purges: they were dropped on purpose)."""
        self._in_transaction = False
        self._in_delivery.clear()
        self._in_transaction_changes = []
        self._refused = None

    def _answer(self, error: str | None, topic: str, partition: int, offset: int) -> None:
        """The broker's answer to one message (the backend's one delivery callback): refusals, and the
        changelog's positions where a state store needs them."""
        if error is not None:
            self._refused = self._refused or error
        elif self.state is not None and topic == self.state.changelog:
            self._changelog_next[partition] = max(self._changelog_next.get(partition, 0), offset + 1)

    def _write_and_send(self) -> None:
        outcomes = [o for o in self._finished if (o.inbound.topic, o.inbound.partition) in self.partitions]
        self._finished = []
        changes = self.state.take() if self.state is not None else []
        if not outcomes and not changes:
            return
        started = time.perf_counter()
        results = [o for o in outcomes if o.failure is None]
        if results and self.group.conn is not None:  # else results only: the sink stores them
            self._store(results)
        self._send(_InDelivery(outcomes, changes))
        self.metrics.batch_seconds.labels(self.group.name).observe(time.perf_counter() - started)

    def _store(self, results: list[Outcome]) -> None:
        """The group's store, in one transaction; what it cannot store is dead-lettered, never a crash loop.

        A group may refuse some outcomes by name (``Rejected``); any other failure that is the input's
        (a missing binding, a value SQLite cannot take) is found by halving the batch, each half its own
        transaction, in order, so the events before it are stored before those after it. A locked
        database is waited out (``write_with_retry``); anything else stops the member, as before.
        """
        try:
            db.write_with_retry(self.group.conn, self.group.store, results, stopping=self._stopping)
        except Rejected as exc:
            self._refuse([(o, f"not stored: {reason}") for o, reason in exc.refused], "Rejected")
            if rest := [o for o in results if o.failure is None]:
                self._store(rest)
        except STORE_INPUT_ERRORS as exc:
            if len(results) == 1:
                self._refuse([(results[0], f"cannot be stored: {exc}")], type(exc).__name__)
                return
            half = len(results) // 2
            self._store(results[:half])
            self._store(results[half:])

    def _refuse(self, refused: list[tuple[Outcome, str]], error_class: str) -> None:
        """Outcomes the group could not store become dead letters (counted against the ratio too)."""
        for outcome, reason in refused:
            item = outcome.inbound
            self.log.warning(
                "%s: dead-lettering %s/%d@%d: %s", self.group.name, item.topic, item.partition, item.offset, reason
            )
            outcome.detail, outcome.failure = None, Failure("invalid", error_class, reason)
        self.dead_letters.judge(True for _ in refused)

    def _send(self, batch: _InDelivery) -> None:
        one_by_one, published = self._messages(batch.outcomes)
        if (one_by_one or published or batch.changes) and self.exactly_once and not self._in_transaction:
            self.backend.begin_transaction()
            self._in_transaction = True
        self._in_delivery.append(batch)
        for topic, value, key, headers in one_by_one:
            self.backend.produce(topic, value, key, headers)
        if published is not None:
            self.backend.produce_many(*published)
        for change in batch.changes:
            self.backend.produce(self.state.changelog, change.value, change.key.encode(), None, change.partition[1])

    def _messages(
        self, outcomes: list[Outcome]
    ) -> tuple[list[tuple[str, bytes | None, bytes | None, list | None]], tuple[str, list, list] | None]:
        """A turn's messages: one by one, its dead letters; and its results (or a non-publishing group's own
        messages), encoded in one call from columns: (topic, values, keys), or None for none."""
        single: list[tuple[str, bytes | None, bytes | None, list | None]] = []
        finished = []
        for outcome in outcomes:
            if outcome.failure is not None:
                key, value, headers = self.dead_letters.message(outcome.inbound, outcome.failure)
                if self.spans is not None:
                    headers = self.spans.headers(outcome, headers)
                single.append((self.dead_letters.topic, value, key, headers))
            else:
                finished.append(outcome)
        if not finished:
            return single, None
        if not self.group.publishes:
            own = self.group.messages(finished)
            return single, None if own is None else self._batch(single, *own, finished)
        events = [o.inbound.event for o in finished]
        detail = self._detail_type
        values = self._encode_result.columns(
            [
                [e.event_id for e in events],
                self.group.name,
                [e.video_id for e in events],
                now_ms(),  # processed_at: one clock reading for the batch
                [e.created_at for e in events],  # event_at
                self.group.conn is not None,  # stored: direct mode, the sink has nothing left to do with it
                [(detail, o.detail) for o in finished],
            ],
            len(finished),
        )
        return single, self._batch(single, self._results_topic, values, finished)

    def _batch(
        self, single: list, topic: str, values: list[bytes | None], outcomes: list[Outcome]
    ) -> tuple[str, list, list] | None:
        """Messages with ``values`` (None: the outcome has none), each keyed as its outcome's event, as columns for
        the producer's one call; or, where a sampled event's message carries its trace, added to ``single``."""
        keys = [o.inbound.key for o in outcomes]
        if self.spans is not None:
            traced = [self.spans.headers(o, None) for o in outcomes]  # every outcome's span concluded
            if any(traced):  # these go one by one, in order
                single += [(topic, v, k, h) for v, k, h in zip(values, keys, traced, strict=True) if v is not None]
                return None
        if None in values:
            keys = [k for v, k in zip(values, keys, strict=True) if v is not None]
            values = [v for v in values if v is not None]
        return (topic, values, keys) if values else None

    def _settle(self) -> None:
        """Once the broker has answered every message sent: finish the offsets of everything in flight, or, if
        it refused one, send it all again. Answers are not told apart by batch (refusals only, or one callback
        for the producer): settling all at once never finishes an offset before its messages are in."""
        if not self._in_delivery or self.backend.unanswered():
            return
        if self._refused is not None:
            self._send_again(self._refused)
            return
        batches, self._in_delivery = self._in_delivery, []
        changes = [c for b in batches for c in b.changes]
        if changes and self.exactly_once:
            self._in_transaction_changes += changes
        elif changes:
            self.state.save(changes, self._changelog_next)
        for batch in batches:
            for partition, run in groupby(batch.outcomes, _outcome_partition):
                if offsets := self.partitions.get(partition):
                    offsets.finish_all([o.inbound.offset for o in run])
            self._count(batch.outcomes)

    def _send_again(self, error: str) -> None:
        """After a refused message, send everything in flight again with a new producer.

        SQLite effects are already durable; a repeated result is harmless. In a transaction
        there is nothing to repeat: it is aborted, and the member stops.
        """
        if self.exactly_once:
            self.backend.abort_transaction()
            raise ConsumerStopped(f"the broker refused result messages ({error}): transaction aborted")
        pending, self._in_delivery = self._in_delivery, []
        attempt = max(b.attempt for b in pending)
        if attempt >= DELIVERY_ATTEMPTS:
            raise ConsumerStopped(
                f"the broker refused result messages {attempt} times ({error}): stopping without "
                "committing them; they are processed again on restart"
            )
        self.log.warning(
            "%s: the broker refused result messages (%s): sending %d again with a new producer",
            self.group.name,
            error,
            sum(len(b.outcomes) for b in pending),
        )
        self.backend.replace_producer(f"result messages refused ({error})")  # the old one's answers are dropped
        self._refused = None
        for batch in pending:
            self._send(_InDelivery(batch.outcomes, batch.changes, attempt + 1))

    def _commit_due(self) -> bool:
        return self._since_commit >= COMMIT_EVERY or time.monotonic() - self._last_commit >= self.commit_interval

    def _commit(self, wait: bool) -> None:
        if self.exactly_once and self._in_transaction:
            self.backend.deliver(FLUSH_TIMEOUT)  # every message of the transaction answered, its offsets finished
            self._settle()
            if self._in_delivery:
                self.backend.abort_transaction()
                raise ConsumerStopped("the broker did not acknowledge a transaction's messages: aborted")
        positions = {tp: off for tp, o in self.partitions.items() if (off := o.committable()) is not None}
        self._last_commit, self._since_commit = time.monotonic(), 0
        started = time.perf_counter()
        if self.exactly_once:
            if not self._in_transaction:
                return
            self._in_transaction = False
            try:
                if positions:
                    self.backend.send_offsets_to_transaction(positions)
                self.backend.commit_transaction()
            except ConsumerStopped:  # the backend aborted it
                self._void()
                raise
            if self._in_transaction_changes:  # committed: now, and not before, the stores may have them
                self.state.save(self._in_transaction_changes, self._changelog_next)
                self._in_transaction_changes = []
        elif not positions or not self.backend.commit(positions, wait):
            return
        self.metrics.commit_seconds.labels(self.group.name).observe(time.perf_counter() - started)
        for tp, off in positions.items():
            self.partitions[tp].committed = off

    def _count(self, outcomes: list[Outcome]) -> None:
        self.processed += len(outcomes)
        self._since_commit += len(outcomes)
        self.dead_lettered += sum(o.failure is not None for o in outcomes)
        self.metrics.count_outcomes(
            Counter(
                "dead_letter" if o.failure else str(o.detail.get("status") or o.detail.get("label")) for o in outcomes
            )
        )
