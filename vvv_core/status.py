"""``vvv status``: is the background work keeping up? Lag, dead letters and results, per group."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from confluent_kafka import Message

from vvv_core import dlq, kafka, scoreboard
from vvv_core.avro import SchemaStore
from vvv_core.config import Settings
from vvv_core.probes import MemberProbe, probe_all
from vvv_core.registry import schema_store
from vvv_core.runtime.group import Groups, client_mode

# Members by group id, each (client_id@host, as a broker names it) with the partitions it owns.
MembersStarted = Callable[[], dict[str, dict[str, list[int]]]]
RESULTS_TAIL = 200  # results read from the end of each partition to find each group's latest


@dataclass
class PartitionLag:
    partition: int
    committed: int | None  # None: the group never committed here
    end: int | None  # None: the broker gave no high watermark in time
    lag: int | None


@dataclass
class GroupStatus:
    group: str
    group_id: str
    topic: str
    owned: dict[str, list[int]] | None  # each member (client_id@host) -> its input partitions; None: not named
    partitions: list[PartitionLag] = field(default_factory=list)
    dead_letters: int | None = None  # not replayed yet
    dead_letters_replayed: int | None = None
    last_result_at: str | None = None
    probes: list[MemberProbe] = field(default_factory=list)  # what each member serving probes says

    @property
    def retries_waiting(self) -> int | None:
        """Events waiting for another attempt, in all members; None unless every member told."""
        told = [p.retries_waiting for p in self.probes]
        return None if not told or None in told else sum(told)

    @property
    def restoring(self) -> tuple[int, int] | None:
        """Partitions whose state store members are restoring, and changelog records left, summed over the members
        that say (those keeping state); None when none does."""
        told = [(p.restoring, p.restore_left or 0) for p in self.probes if p.restoring is not None]
        return (sum(r for r, _ in told), sum(left for _, left in told)) if told else None

    @property
    def members(self) -> list[str] | None:
        """None: the broker does not report members (tansu)."""
        return None if self.owned is None else list(self.owned)

    @property
    def modes(self) -> list[str] | None:
        """How its members run (direct, results-only), from their client ids; None where members are not reported."""
        if self.members is None:
            return None
        return sorted({client_mode(self.group, m.split("@", 1)[0]) for m in self.members})

    @property
    def total_lag(self) -> int | None:
        lags = [p.lag for p in self.partitions]
        return None if None in lags else sum(lags)


def group_status(
    settings: Settings,
    groups: Groups,
    readers: kafka.Readers | None = None,
    schemas: SchemaStore | None = None,
    started: MembersStarted | None = None,
) -> list[GroupStatus]:
    """Every group's lag, members, dead letters and latest result, through ``readers`` and ``schemas`` (kept by
    the console: a store takes milliseconds to make) or its own: a handful of requests for all groups together,
    two fetch rounds at most. ``started``: the members the caller started itself (the demo's), for groups the
    broker names none of."""
    if readers is None:
        with kafka.Readers(settings) as own:
            return group_status(settings, groups, own, schemas, started)
    names = list(groups)
    inputs = {name: groups[name].input_topic(settings) for name in names}
    dead = {name: settings.dead_letter_topic(name) for name in names}
    ids = {name: settings.group_id(name) for name in names}
    replays = {name: dlq.replay_group(settings, name) for name in names}
    committed = readers.committed({ids[n]: inputs[n] for n in names} | {replays[n]: dead[n] for n in names})
    members = readers.members(list(ids.values()))
    known = started() if started is not None else {}
    members = {group_id: named or known.get(group_id) for group_id, named in members.items()}
    starts: dict[str, dict[int, int]] = {settings.results_topic: {}}  # a fetch for the ends starts where it costs least
    for name in names:
        starts.setdefault(dead[name], {})
        start = starts.setdefault(inputs[name], {})
        for p, offset in committed[ids[name]].items():
            start[p] = min(offset, start.get(p, offset))
    ends = readers.ends(starts)

    tail = {p: max(low, high - RESULTS_TAIL) for p, (low, high) in ends[settings.results_topic].items()}
    holding = [n for n in names if any(high > low for low, high in ends[dead[n]].values())]
    records = readers.read({settings.results_topic: tail} | {dead[n]: None for n in holding})
    last = _last_results(records[settings.results_topic], schemas or schema_store(settings))

    statuses = []
    for name in names:
        group_id = ids[name]
        status = GroupStatus(
            name, group_id, inputs[name], members[group_id], probes=probe_all(list(members[group_id] or []))
        )
        done = committed[group_id]
        for p in sorted(set(ends[inputs[name]]) | set(done)):
            low, end = ends[inputs[name]].get(p, (None, None))
            position = done.get(p, low)
            lag = None if end is None or position is None else max(0, end - position)
            status.partitions.append(PartitionLag(p, done.get(p), end, lag))
        if not ends[dead[name]]:  # no dead-letter topic (yet)
            status.dead_letters, status.dead_letters_replayed = None, None
        elif name in holding:
            letters = dlq.letters(records[dead[name]], committed[replays[name]])
            replayed = sum(d.replayed for d in letters)
            status.dead_letters, status.dead_letters_replayed = len(letters) - replayed, replayed
        else:
            status.dead_letters, status.dead_letters_replayed = 0, 0
        status.last_result_at = last[name].isoformat(timespec="seconds") if name in last else None
        statuses.append(status)
    return statuses


def _last_results(records: list[Message], schemas: SchemaStore) -> dict[str, datetime]:
    """Each group's latest result among ``records`` (the results topic's tail)."""
    latest: dict[str, datetime] = {}
    for msg in records:
        result = schemas.decode(msg.value(), "Result")
        at = datetime.fromtimestamp(result["processed_at"] / 1000, UTC)
        if result["group"] not in latest or at > latest[result["group"]]:
            latest[result["group"]] = at
    return latest


def database_summary(db_path: str) -> dict[str, object]:
    with scoreboard.reading(db_path) as conn:
        found = scoreboard.read_summary(conn)
    return {
        "labels_per_region": {r: dict(found.scores.labels(r)) for r in sorted(found.scores.regions)},
        "thumbnails": dict(found.thumbnails.counts),
        "liveness": dict(found.liveness.counts),
        "dead_videos": found.liveness.counts["deleted"] + found.liveness.counts["private"],
    }


def as_json(statuses: list[GroupStatus], summary: dict | None) -> dict:
    return {
        "groups": [
            {
                **asdict(s),
                "members": s.members,
                "total_lag": s.total_lag,
                "modes": s.modes,
                "retries_waiting": s.retries_waiting,
                "restoring": s.restoring,
            }
            for s in statuses
        ],
        "database": summary,
    }


def _show(value: object) -> str:
    return "?" if value is None else str(value)


def render(statuses: list[GroupStatus], summary: dict | None) -> str:
    lines = [f"{'group':<12}{'members':>8}{'lag':>8}{'retrying':>10}{'dead letters':>14}  {'last result':<26}mode"]
    for s in statuses:
        members = "?" if s.members is None else str(len(s.members))
        modes = "?" if s.modes is None else ", ".join(s.modes) or "-"
        lines.append(
            f"{s.group:<12}{members:>8}{_show(s.total_lag):>8}{_show(s.retries_waiting):>10}"
            f"{_show(s.dead_letters):>14}  {s.last_result_at or 'none yet':<26}{modes}"
        )
        if s.restoring and s.restoring[0]:
            lines.append(f"  restoring state: {s.restoring[0]} partitions, {s.restoring[1]} changelog records left")
        for p in s.partitions:
            lines.append(
                f"  {s.topic}[{p.partition}]  committed {_show(p.committed):>7}  end {_show(p.end):>7}"
                f"  lag {_show(p.lag):>6}"
            )
    if any(s.members is None for s in statuses):
        lines.append("members: ? = the broker does not report group members (the embedded broker never does)")
    if any(s.retries_waiting is None for s in statuses):
        lines.append(
            "retrying: ? = events waiting for another attempt, as each member's /metrics says: needs every member "
            "to serve them (VVV_METRICS_PORT) and the broker to name its members"
        )
    for s in statuses:
        for p in s.probes:
            if p.error or p.ready is False:
                lines.append(f"  {s.group} member {p.member}: {p.error or 'not ready'}")
    if any(p.end is None for s in statuses for p in s.partitions):
        lines.append("end/lag: ? = the broker gave no high watermark in time for that partition")
    if summary is not None:
        lines.append("")
        lines.append(
            "labels per region: "
            + "; ".join(
                f"{region} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
                for region, c in summary["labels_per_region"].items()
            )
            or "none"
        )
        lines.append(
            "thumbnails: " + (", ".join(f"{k} {v}" for k, v in sorted(summary["thumbnails"].items())) or "none checked")
        )
        lines.append(
            "liveness: "
            + (", ".join(f"{k} {v}" for k, v in sorted(summary["liveness"].items())) or "none checked")
            + f"; dead or private videos: {summary['dead_videos']}"
        )
    return "\n".join(lines)
