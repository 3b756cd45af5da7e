"""``vvv report``: one self-contained HTML page for the site's operators, from the console's views.

Summary first (labels, what the checks found and why some could not say), then the pipeline,
then the videos per region. Inline CSS and SVG only (no scripts; thumbnails are the one thing
a reader's browser fetches, from the allow-listed hosts), so it can be mailed or archived as is.
"""

from __future__ import annotations

from datetime import UTC, datetime

from vvv_core import scoreboard, views


def build_report(db_path: str, groups: list[dict] | None, why: str | None = None, hosts: tuple[str, ...] = ()) -> str:
    """The page; ``groups`` is ``vvv status --json``'s, or None with ``why`` saying why it is missing;
    ``hosts``: the thumbnail hosts whose images it shows. It only reads the database (see scoreboard)."""
    with scoreboard.reading(db_path) as conn:
        results = scoreboard.read_results(conn)
        summary = scoreboard.read_summary(conn, results.scores)
    return "\n".join(
        [
            "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>ViralVidVault report</title>"
            f"<style>{views.STYLE}</style></head><body>",
            "<h1>ViralVidVault report</h1>",
            f"<p class='muted'>Generated {datetime.now(UTC).isoformat(timespec='seconds')} "
            f"from {views.e(db_path)}.</p>",
            "<h2 id='summary'>Summary</h2>",
            views.summary(summary),
            "<h2 id='pipeline'>Pipeline</h2>",
            views.pipeline(groups, why),
            "<h2 id='viral'>Viral and trending videos per region</h2>",
            views.results(results, hosts),
            "</body></html>",
        ]
    )
