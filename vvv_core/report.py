"""``vvv report``: one self-contained HTML page for the site's operators.

Inline CSS and SVG only (no scripts, nothing fetched), so it can be mailed or archived as is.
Every text from the data (titles come from YouTube) is HTML-escaped.
"""

from __future__ import annotations

import html
import sqlite3
from collections import Counter
from datetime import UTC, datetime

from vvv_core import db
from vvv_core.domain.regions import in_order
from vvv_core.domain.scoring import label

BINS = 10  # score histogram: 0-10, ..., 90-100
COLOURS = {
    "VIRAL": "#c0392b",
    "TRENDING": "#e67e22",
    "NORMAL": "#7f8c8d",
    "valid": "#27ae60",
    "placeholder": "#f1c40f",
    "broken": "#c0392b",
    "error": "#7f8c8d",
}
STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:72rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.2rem .6rem;text-align:left;border-bottom:1px solid #eee}
td:last-child{white-space:nowrap}
td.n{text-align:right}.muted{color:#777}.charts{display:flex;flex-wrap:wrap;gap:1rem}
figure{margin:0}figcaption{font-size:.85rem;text-align:center}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _bars(counts: list[tuple[str, int]], width: int = 320, bar: int = 18) -> str:
    """A horizontal bar chart as inline SVG."""
    top = max((n for _, n in counts), default=0) or 1
    rows = []
    for i, (name, n) in enumerate(counts):
        length = int((width - 140) * n / top)
        y = i * (bar + 6)
        rows.append(
            f'<text x="0" y="{y + 13}" font-size="12">{_e(name)}</text>'
            f'<rect x="90" y="{y}" width="{length}" height="{bar}" fill="{COLOURS.get(name, "#2980b9")}"/>'
            f'<text x="{95 + length}" y="{y + 13}" font-size="12">{n}</text>'
        )
    height = max(1, len(counts)) * (bar + 6)
    return f'<svg role="img" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">{"".join(rows)}</svg>'


def _histogram(scores: list[float], width: int = 220, height: int = 90) -> str:
    """Scores 0..100 in ten bins, as inline SVG."""
    bins = [0] * BINS
    for s in scores:
        bins[min(BINS - 1, int(s // (100 / BINS)))] += 1
    top = max(bins) or 1
    w = width / BINS
    bars = "".join(
        f'<rect x="{i * w:.1f}" y="{height - 15 - (height - 20) * n / top:.1f}" width="{w - 2:.1f}" '
        f'height="{(height - 20) * n / top:.1f}" fill="#2980b9"><title>{i * 10}-{i * 10 + 10}: {n}</title></rect>'
        for i, n in enumerate(bins)
    )
    axis = (
        f'<text x="0" y="{height}" font-size="10">0</text><text x="{width - 18}" y="{height}" font-size="10">100</text>'
    )
    return f'<svg role="img" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">{bars}{axis}</svg>'


def _rows(conn: sqlite3.Connection, table: str, sql: str) -> list[tuple]:
    return conn.execute(sql).fetchall() if db.columns(conn, table) else []


def build_report(db_path: str, lag: list[dict] | None, lag_error: str | None = None) -> str:
    """The page; ``lag`` is ``vvv status --json``'s groups, or None with ``lag_error`` saying why."""
    conn = db.connect(db_path)
    try:
        scored = conn.execute(
            "SELECT coalesce(region, '?'), video_id, title, virality_score FROM videos "
            "WHERE virality_score IS NOT NULL ORDER BY virality_score DESC"
        ).fetchall()
        thumbs = dict(_rows(conn, "thumbnail_checks", "SELECT video_id, status FROM thumbnail_checks"))
        dead = _rows(
            conn,
            "video_liveness",
            "SELECT l.video_id, v.title, l.status, l.http_status, l.dead_since "
            "FROM video_liveness l LEFT JOIN videos v USING (video_id) "
            "WHERE l.status IN ('deleted', 'private') ORDER BY l.dead_since",
        )
    finally:
        conn.close()
    regions = in_order({r[0] for r in scored})
    out = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>ViralVidVault report</title>"
        f"<style>{STYLE}</style></head><body>",
        "<h1>ViralVidVault report</h1>",
        f"<p class='muted'>Generated {datetime.now(UTC).isoformat(timespec='seconds')} from {_e(db_path)}: "
        f"{len(scored)} scored videos in {len(regions)} regions.</p>",
    ]

    out.append("<h2 id='viral'>Viral and trending videos per region</h2>")
    for region in regions:
        top = [r for r in scored if r[0] == region and label(r[3]) != "NORMAL"]
        out.append(f"<h3>{_e(region)}</h3>")
        if not top:
            out.append("<p class='muted'>none</p>")
            continue
        out.append("<table><tr><th>score</th><th>label</th><th>video</th><th>title</th><th>thumbnail</th></tr>")
        out += [
            f"<tr><td class='n'>{s:.1f}</td><td>{label(s)}</td><td>{_e(v)}</td><td>{_e(t)}</td>"
            f"<td>{_e(thumbs.get(v, 'not checked'))}</td></tr>"
            for _r, v, t, s in top
        ]
        out.append("</table>")

    out.append("<h2 id='scores'>Scores per region</h2><div class='charts'>")
    for region in regions:
        values = [r[3] for r in scored if r[0] == region]
        labels = Counter(label(s) for s in values)
        out.append(
            f"<figure>{_histogram(values)}<figcaption>{_e(region)}: {len(values)} videos, "
            f"{labels['VIRAL']} viral, {labels['TRENDING']} trending</figcaption></figure>"
        )
    out.append("</div>")

    verdicts = Counter(thumbs.values())
    out.append("<h2 id='thumbnails'>Thumbnail verdicts</h2>")
    out.append(
        _bars([(s, verdicts[s]) for s in ("valid", "placeholder", "broken", "error")])
        if verdicts
        else "<p class='muted'>no thumbnail checked yet</p>"
    )

    out.append(f"<h2 id='dead'>Dead and private videos ({len(dead)})</h2>")
    if dead:
        out.append("<table><tr><th>video</th><th>title</th><th>status</th><th>HTTP</th><th>since</th></tr>")
        out += [
            f"<tr><td>{_e(v)}</td><td>{_e(t)}</td><td>{_e(s)}</td><td>{_e(h)}</td><td>{_e(d)}</td></tr>"
            for v, t, s, h, d in dead
        ]
        out.append("</table>")
    else:
        out.append("<p class='muted'>none found</p>")

    out.append("<h2 id='lag'>Consumer lag</h2>")
    if lag is None:
        out.append(f"<p class='muted'>not available: {_e(lag_error)}</p>")
    else:
        out.append("<table><tr><th>group</th><th>lag</th><th>dead letters</th><th>last result</th></tr>")
        out += [
            f"<tr><td>{_e(g['group'])}</td><td class='n'>{_e(g['total_lag'] if g['total_lag'] is not None else '?')}"
            f"</td><td class='n'>{_e(g['dead_letters'] if g['dead_letters'] is not None else '?')}</td>"
            f"<td>{_e(g['last_result_at'] or 'none yet')}</td></tr>"
            for g in lag
        ]
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)
