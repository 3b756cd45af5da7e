"""``vvv status``: is the background work keeping up? Lag, dead letters and results, per group."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from vvv_core import db, kafka
from vvv_core.config import Settings
from vvv_core.dlq import list_dead_letters
from vvv_core.domain.scoring import label
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


def _last_results(settings: Settings) -> dict[str, datetime]:
    topic, schemas = settings.results_topic, schema_store(settings)
    marks = kafka.watermarks(settings, topic)
    start = {p: max(low, high - RESULTS_TAIL) for p, (low, high) in marks.items()}
    latest: dict[str, datetime] = {}
    for msg in kafka.read_topic(settings, topic, start=start):
        result = schemas.decode(msg.value(), "Result")
        at = datetime.fromtimestamp(result["processed_at"] / 1000, UTC)
        if result["group"] not in latest or at > latest[result["group"]]:
            latest[result["group"]] = at
    return latest


def group_status(settings: Settings, groups: Groups, started: MembersStarted | None = None) -> list[GroupStatus]:
    """``started``: the members the caller started itself (the demo's), for groups the broker names none of."""
    kafka.check_broker(settings)
    last = _last_results(settings)
    members = kafka.group_members(settings, [settings.group_id(name) for name in groups])
    known = started() if started is not None else {}
    members = {group_id: named or known.get(group_id) for group_id, named in members.items()}
    statuses = []
    for name, group_class in groups.items():
        topic = group_class.input_topic(settings)
        group_id = settings.group_id(name)
        committed = kafka.committed_offsets(settings, group_id, topic)
        ends = kafka.watermarks(settings, topic, start=committed)
        status = GroupStatus(name, group_id, topic, members[group_id], probes=probe_all(list(members[group_id] or [])))

        for p in sorted(set(ends) | set(committed)):
            low, end = ends.get(p, (None, None))
            position = committed.get(p, low)
            lag = None if end is None or position is None else max(0, end - position)
            status.partitions.append(PartitionLag(p, committed.get(p), end, lag))
        status.dead_letters, status.dead_letters_replayed = _dead_letters(settings, name)
        status.last_result_at = last[name].isoformat(timespec="seconds") if name in last else None
        statuses.append(status)
    return statuses


def _dead_letters(settings: Settings, group: str) -> tuple[int | None, int | None]:
    """Dead letters waiting, and replayed ones; read only where the topic holds any (it is usually empty)."""
    marks = kafka.watermarks(settings, settings.dead_letter_topic(group))
    if not marks:
        return None, None
    if not any(high > low for low, high in marks.values()):
        return 0, 0
    letters = list_dead_letters(settings, group)
    replayed = sum(d.replayed for d in letters)
    return len(letters) - replayed, replayed


def database_summary(db_path: str) -> dict[str, object]:
    conn = db.connect(db_path)
    try:
        scores = conn.execute(
            "SELECT coalesce(region, '?'), virality_score FROM videos WHERE virality_score IS NOT NULL"
        ).fetchall()
        labels: dict[str, Counter[str]] = {}
        for region, score in scores:
            labels.setdefault(region, Counter())[label(score)] += 1

        def counts(table: str) -> dict[str, int]:
            if not db.columns(conn, table):
                return {}
            return dict(conn.execute(f"SELECT status, count(*) FROM {table} GROUP BY status"))

        liveness = counts("video_liveness")
        return {
            "labels_per_region": {r: dict(c) for r, c in sorted(labels.items())},
            "thumbnails": counts("thumbnail_checks"),
            "liveness": liveness,
            "dead_videos": liveness.get("deleted", 0) + liveness.get("private", 0),
        }
    finally:
        conn.close()


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
