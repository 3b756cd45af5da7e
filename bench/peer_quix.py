"""The scoring job written in Quix Streams, the peer `bench/scoring.py` measures this project against.

Not product code. It runs in its own venv (`.venv-peer`, made by bench/run.py): Quix Streams
3.28 pins confluent-kafka below 2.13, this project needs 2.16. It reads the same topic from the
same broker, scores each batch with the same history query and the same formula
(``vvv_core.domain.scoring``, pure Python, put on the path), writes the same scores, and prints
``peer<TAB>events<TAB>seconds`` from its first message to its last write.

In stream mode (the last argument ``stream``) it is scoring from the stream as Quix Streams does it: each
video's newest two snapshots in its state store (RocksDB, every change to its changelog topic), the same
``remember`` and formula, a result per event to a topic (JSON, its default serializer), exactly-once like ours.
Its settings are those its documentation gives for the checkpoint, the one knob it names for throughput
(``commit_interval``, here ours: 1 s; ``commit_every`` off); everything else is its default.

    .venv-peer/bin/python bench/peer_quix.py BOOTSTRAP TOPIC DB EVENTS [database|stream]
"""

from __future__ import annotations

import io
import json
import sqlite3
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import fastavro  # noqa: E402
from quixstreams import Application  # noqa: E402
from quixstreams.models.serializers import Deserializer  # noqa: E402
from quixstreams.sinks import BatchingSink, SinkBatch  # noqa: E402

from vvv_core.domain.scoring import Snapshot, remember, score  # noqa: E402

HEADER = 10  # Avro single-object encoding: C3 01 and the 8-byte fingerprint
HISTORY = """
SELECT s.video_id, s.region, s.view_count, s.likes, s.comments,
       CAST(round((julianday(s.fetched_at) - 2440587.5) * 86400000) AS INTEGER)
FROM json_each(?) AS wanted
JOIN video_snapshots AS s ON s.rowid IN (
    SELECT rowid FROM video_snapshots WHERE video_id = wanted.value AND julianday(fetched_at) IS NOT NULL
    ORDER BY julianday(fetched_at) DESC, rowid DESC LIMIT 2)
ORDER BY s.video_id, julianday(s.fetched_at) DESC, s.rowid DESC"""


class VideoEvents(Deserializer):
    def __init__(self) -> None:
        super().__init__()
        self.schema = fastavro.parse_schema(json.loads((ROOT / "vvv_core/schemas/video_event.avsc").read_text()))
        self.first: float | None = None

    def __call__(self, value: bytes, ctx: object) -> dict:
        if self.first is None:
            self.first = time.perf_counter()
        body = io.BytesIO(value)
        body.seek(HEADER)
        return fastavro.schemaless_reader(body, self.schema, None)


class Scores(BatchingSink):
    def __init__(self, db_path: str, events: int, app: Application) -> None:
        super().__init__()
        self.conn = sqlite3.connect(db_path, isolation_level=None)
        self.events, self.app = events, app
        self.written, self.last = 0, 0.0

    def write(self, batch: SinkBatch) -> None:
        wanted = {item.value["video_id"] for item in batch}
        history: dict[str, list[Snapshot]] = defaultdict(list)
        for video_id, region, views, likes, comments, at in self.conn.execute(HISTORY, (json.dumps(list(wanted)),)):
            history[video_id].append(Snapshot(region, views or 0, likes or 0, comments or 0, at))
        scored = {v: score(history.get(v, ())) for v in wanted}
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany(
            "UPDATE videos SET virality_score = ? WHERE video_id = ?",
            [(s.score, v) for v, s in scored.items() if s.reason is None],
        )
        self.conn.execute("COMMIT")
        self.written += batch.size
        self.last = time.perf_counter()
        if self.written >= self.events:
            self.app.stop()


def millis(value: object) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)  # fastavro reads timestamps as datetimes


def stream_job(app: Application, sdf, events: int, done: list[float]):
    """Scoring in stream mode: the state the newest two snapshots, a result per event."""

    def scored(value: dict, state) -> dict:
        kept = [Snapshot(*s) for s in state.get("kept", [])]
        at = millis(value["fetched_at"]) or millis(value["created_at"])
        new = Snapshot(value["region"], value["view_count"] or 0, value["likes"] or 0, value["comments"] or 0, at)
        if (newest := remember(kept, new)) is not None:
            kept = newest
            state.set("kept", [[s.region, s.view_count, s.likes, s.comments, s.fetched_at_ms] for s in kept])
        done.append(time.perf_counter())
        if len(done) >= events:
            app.stop()
        return {"event_id": value["event_id"], "video_id": value["video_id"], **score(kept).detail()}

    return sdf.apply(scored, stateful=True)


def main() -> None:
    bootstrap, topic, db_path, events = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    mode = sys.argv[5] if len(sys.argv) > 5 else "database"
    app = Application(
        broker_address=bootstrap,
        consumer_group=f"quix-peer-{time.time_ns()}",
        auto_offset_reset="earliest",
        commit_interval=1.0,
        use_changelog_topics=mode == "stream",
        processing_guarantee="exactly-once" if mode == "stream" else "at-least-once",
        state_dir=f"{db_path}.quix-state",
    )
    events_in = VideoEvents()
    sdf = app.dataframe(app.topic(topic, value_deserializer=events_in, key_deserializer="bytes"))
    if mode == "stream":
        done: list[float] = []
        stream_job(app, sdf, events, done).to_topic(app.topic(f"{topic}.quix-results", value_serializer="json"))
        app.run()
        print(f"peer\t{len(done)}\t{done[-1] - events_in.first:.6f}", flush=True)
        return
    sink = Scores(db_path, events, app)
    sdf.sink(sink)
    app.run()
    print(f"peer\t{sink.written}\t{sink.last - events_in.first:.6f}", flush=True)


if __name__ == "__main__":
    main()
