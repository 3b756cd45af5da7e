"""What an operator looks at, rendered once for both the console (live) and ``vvv report`` (static).

Each view is an HTML fragment built from plain data (``vvv_core.scoreboard`` reads the cron database's):
the pipeline (groups, members, lag, dead letters), the summary (labels, thumbnail and liveness verdicts
with their reasons), the results (score histograms, each region's viral and trending videos, a page at a
time) and a group's dead letters. Every text
from the data (titles come from YouTube) is HTML-escaped; thumbnails are shown as images only
from the allow-listed hosts (``VVV_THUMBNAIL_HOSTS``), loaded by the reader's browser.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from urllib.parse import urlsplit

from vvv_core.dlq import DeadLetter
from vvv_core.domain.regions import in_order
from vvv_core.domain.scoring import label
from vvv_core.scoreboard import PAGE, Listing, Results, Summary

BINS = 10  # score histogram: 0-10, ..., 90-100
WATCH = "https://www.youtube.com/watch?v="
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;max-width:80rem}
h1{font-size:1.5rem;margin:0 0 .5rem}h2{font-size:1.15rem;margin-top:1.6rem;border-bottom:1px solid #ddd}
h3{font-size:1rem;margin:.8rem 0 .2rem}
table{border-collapse:collapse;margin:.4rem 0}td,th{padding:.2rem .5rem;text-align:left;border-bottom:1px solid #eee}
th[data-sort]{cursor:pointer;text-decoration:underline dotted}
td.n,th.n{text-align:right}.muted{color:#777}.charts{display:flex;flex-wrap:wrap;gap:1rem}
figure{margin:0}figcaption{font-size:.85rem;text-align:center}
.tag{display:inline-block;padding:0 .4rem;border-radius:.6rem;color:#fff;font-size:.8rem}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}.card{border:1px solid #ddd;border-radius:.4rem;padding:.5rem .8rem}
.card b{font-size:1.3rem;display:block}.bad{color:#c0392b}.good{color:#27ae60}
img.thumb{height:36px;vertical-align:middle}
"""
COLOURS = {
    "VIRAL": "#c0392b",
    "TRENDING": "#e67e22",
    "NORMAL": "#7f8c8d",
    "valid": "#27ae60",
    "placeholder": "#d4ac0d",
    "broken": "#c0392b",
    "error": "#7f8c8d",
    "alive": "#27ae60",
    "deleted": "#c0392b",
    "private": "#8e44ad",
    "unknown": "#7f8c8d",
    "ready": "#27ae60",
    "not ready": "#c0392b",
}


def e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def tag(name: str) -> str:
    """A label or status in its colour."""
    return f"<span class='tag' style='background:{COLOURS.get(name, '#2980b9')}'>{e(name)}</span>"


def video_link(video_id: str) -> str:
    return f"<a href='{WATCH}{e(video_id)}' rel='noopener noreferrer' target='_blank'>{e(video_id)}</a>"


# -- the cron database's side ------------------------------------------------------------------


def summary(found: Summary) -> str:
    """First on every page: how many videos are viral, what the checks found, and why any could not say."""
    labels = found.scores.labels()
    dead = found.liveness.counts["deleted"] + found.liveness.counts["private"]
    cards = [
        ("viral", labels["VIRAL"]),
        ("trending", labels["TRENDING"]),
        ("scored", found.scores.scored),
        ("not scored yet", found.scores.unscored),
        ("dead or private", dead),
    ]
    out = ["<div class='cards'>"]
    out += [f"<div class='card'><b>{n:,}</b>{e(name)}</div>" for name, n in cards]
    out.append("</div>")
    for title, verdicts, order in (
        ("Thumbnails", found.thumbnails, ("valid", "placeholder", "broken", "error")),
        ("Liveness", found.liveness, ("alive", "deleted", "private", "unknown")),
    ):
        total = sum(verdicts.counts.values())
        out.append(f"<h3>{title}: {total:,} checked</h3>")
        if not total:
            out.append("<p class='muted'>none checked yet</p>")
            continue
        out.append("<p>" + " ".join(f"{tag(s)} {verdicts.counts[s]:,}" for s in order if verdicts.counts[s]) + "</p>")
        for status, reasons in verdicts.reasons.items():
            out.append(f"<table><tr><th>{e(status)}: why</th><th class='n'>videos</th></tr>")
            out += [f"<tr><td>{e(r)}</td><td class='n'>{n:,}</td></tr>" for r, n in reasons.most_common(10)]
            out.append("</table>")
    return "\n".join(out)


# The listings' columns: heading, what it sorts by in the console (None: not sortable), numeric.
COLUMNS = [
    ("score", "score", True),
    ("label", None, False),  # the score's, in the same order
    ("views/h", "views", True),
    ("engagement %", "engagement", True),
    ("thumbnail", None, False),
    ("video", "video", False),
    ("title", "title", False),
    ("thumbnail check", "thumbnail", False),
    ("liveness", "liveness", False),
]


def results(found: Results, thumbnail_hosts: tuple[str, ...], sortable: bool = False) -> str:
    """Score histograms, then each region's viral and trending videos, a page of its listing (best first unless
    sorted otherwise). ``sortable`` (the console): headings sort and buttons page, by asking the server again."""
    regions = in_order(set(found.scores.regions))
    out = ["<div class='charts'>"]
    for region in regions:
        labels = found.scores.labels(region)
        out.append(
            f"<figure>{histogram(found.scores.regions[region])}<figcaption>{e(region)}: "
            f"{sum(labels.values()):,} scored, {labels['VIRAL']:,} viral, {labels['TRENDING']:,} trending"
            "</figcaption></figure>"
        )
    out.append("</div>")
    for region in regions:
        out.append(f"<h3>{e(region)}</h3>")
        listing = found.listings.get(region)
        if listing is None:
            out.append("<p class='muted'>no viral or trending video</p>")
            continue
        out.append(_listing(region, listing, thumbnail_hosts, sortable))
    return "\n".join(out)


def _listing(region: str, listing: Listing, thumbnail_hosts: tuple[str, ...], sortable: bool) -> str:
    order = listing.order
    head = []
    for heading, column, numeric in COLUMNS:
        cls = " class='n'" if numeric else ""
        if not sortable or column is None:
            head.append(f"<th{cls}>{e(heading)}</th>")
            continue
        now = column == order.column
        way = ("descending" if order.descending else "ascending") if now else "none"
        arrow = (" ▼" if order.descending else " ▲") if now else ""
        head.append(f"<th{cls} data-sort='{column}' aria-sort='{way}'>{e(heading)}{arrow}</th>")
    out = [f"<table class='listing' data-region='{e(region)}'><tr>{''.join(head)}</tr>"]
    for v in listing.videos:
        allowed = v.thumbnail_url and (urlsplit(v.thumbnail_url).hostname or "") in thumbnail_hosts
        image = f"<img class='thumb' loading='lazy' alt='' src='{e(v.thumbnail_url)}'>" if allowed else ""
        checks = [
            tag(v.thumbnail) + (f" <span class='muted'>{e(v.thumbnail_reason)}</span>" if v.thumbnail_reason else "")
            if v.thumbnail
            else "<span class='muted'>not checked</span>",
            tag(v.liveness) if v.liveness else "<span class='muted'>not checked</span>",
        ]
        out.append(
            f"<tr><td class='n'>{v.score:.1f}</td><td>{tag(label(v.score))}</td>"
            f"<td class='n'>{_show(v.velocity)}</td><td class='n'>{_show(v.engagement)}</td><td>{image}</td>"
            f"<td>{video_link(v.video_id)}</td><td>{e(v.title)}</td><td>{checks[0]}</td><td>{checks[1]}</td></tr>"
        )
    out.append("</table>")
    if not sortable:  # the report: the first page, best first
        shown = f"{len(listing.videos)} of {listing.candidates:,}"
        out.append(f"<p class='muted'>{shown} viral or trending, best first</p>")
        return "\n".join(out)
    listed = f"{listing.listed:,}"
    if listing.candidates > listing.listed:
        listed = f"the best {listing.listed:,} of {listing.candidates:,}"
    first = (order.page - 1) * PAGE + 1
    shown = f"{first:,}&ndash;{first + len(listing.videos) - 1:,} of {listed} viral or trending"
    pager = [
        f"<button class='page' data-page='{order.page - 1}'{'' if order.page > 1 else ' disabled'}>previous</button>",
        f"<span class='muted'>page {order.page} of {listing.pages}: {shown}</span>",
        f"<button class='page' data-page='{order.page + 1}'"
        f"{'' if order.page < listing.pages else ' disabled'}>next</button>",
    ]
    out.append(f"<p class='pager' data-region='{e(region)}'>{' '.join(pager)}</p>")
    return "\n".join(out)


def histogram(scores: Mapping[float, int], width: int = 220, height: int = 90) -> str:
    """Scores 0..100 (``scores``: score -> how many videos have it) in ten bins, as inline SVG."""
    bins = [0] * BINS
    for score, n in scores.items():
        bins[min(BINS - 1, max(0, int(score // (100 / BINS))))] += n
    top = max(bins) or 1
    w = width / BINS
    bars = "".join(
        f'<rect x="{i * w:.1f}" y="{height - 15 - (height - 20) * n / top:.1f}" width="{w - 2:.1f}" '
        f'height="{(height - 20) * n / top:.1f}" fill="#2980b9"><title>{i * 10}-{i * 10 + 10}: {n:,}</title></rect>'
        for i, n in enumerate(bins)
    )
    axis = (
        f'<text x="0" y="{height}" font-size="10">0</text><text x="{width - 18}" y="{height}" font-size="10">100</text>'
    )
    return f'<svg role="img" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">{bars}{axis}</svg>'


def _show(value: object) -> str:
    return "?" if value is None else f"{value:,}" if isinstance(value, int) else e(value)


# -- the broker's side ---------------------------------------------------------------------------


def pipeline(groups: list[dict] | None, why: str | None = None, rates: dict[str, float] | None = None) -> str:
    """Every group: members and their health, partitions, lag, retries waiting, dead letters, last result.

    ``groups`` is ``vvv status --json``'s, None with ``why`` when the broker could not be asked;
    ``rates`` the events per second each group committed since the last look (the console's)."""
    if groups is None:
        return f"<p class='bad'>pipeline not available: {e(why)}</p>"
    out = [
        "<table id='groups'><tr><th>group</th><th>members</th><th class='n'>lag</th><th class='n'>events/s</th>"
        "<th class='n'>retrying</th><th class='n'>dead letters</th><th>last result</th><th>partitions (lag)</th></tr>"
    ]
    for g in groups:
        probes = g.get("probes") or []
        members = (
            "<span class='muted'>not named by the broker</span>"
            if g["members"] is None
            else "<br>".join(_member(m, probes, g["owned"][m]) for m in g["members"])
        )
        parts = ", ".join(f"{p['partition']}: {_show(p['lag'])}" for p in g["partitions"]) or "none"
        rate = None if rates is None or g["group"] not in rates else f"{rates[g['group']]:,.1f}"
        again = g.get("dead_letters_replayed")
        replayed = f" <span class='muted'>+{again:,} replayed</span>" if again else ""
        out.append(
            f"<tr data-group='{e(g['group'])}'><td>{e(g['group'])}</td><td>{members}</td>"
            f"<td class='n lag'>{_show(g['total_lag'])}</td><td class='n'>{_show(rate)}</td>"
            f"<td class='n'>{_show(g.get('retries_waiting'))}</td>"
            f"<td class='n dead'>{_show(g['dead_letters'])}{replayed}</td>"
            f"<td>{e(g['last_result_at'] or 'none yet')}</td><td class='muted'>{e(parts)}</td></tr>"
        )
    out.append("</table>")
    return "\n".join(out)


def _member(member: str, probes: list[dict], owned: list[int]) -> str:
    probe = next((p for p in probes if p["member"] == member), None)
    if probe is None or probe["address"] is None:
        health = "<span class='muted'>no probes</span>"
    elif probe["error"]:
        health = f"<span class='bad'>{e(probe['error'])}</span>"
    else:
        health = tag("ready" if probe["ready"] else "not ready")
    partitions = ", ".join(map(str, owned)) or "none"
    return f"{e(member)} {health} <span class='muted'>owns {e(partitions)}</span>"


def dead_letters(group: str, letters: list[DeadLetter], query: str = "", actions: bool = False) -> str:
    """A group's dead letters with their reasons (those matching ``query``), newest first."""
    shown = [d for d in reversed(letters) if matches(d, query)]
    out = [f"<p>{len(shown)} of {len(letters)} dead letters of {e(group)}</p>"]
    if not shown:
        return out[0]
    out.append(
        "<table><tr><th>at</th><th>video</th><th>kind</th><th>error</th><th>attempts</th><th>source</th>"
        + ("<th></th>" if actions else "")
        + "</tr>"
    )
    for d in shown[:200]:
        why = d.why
        video = (d.key or b"").decode(errors="replace")
        button = (
            f"<td><button class='replay' data-partition='{d.partition}' data-offset='{d.offset}'>"
            "replay this one</button></td>"
            if actions and not d.replayed
            else "<td class='muted'>replayed</td>"
            if actions
            else ""
        )
        out.append(
            f"<tr><td>{e(why.get('failed.at'))}</td><td>{e(video)}</td><td>{e(why.get('error.kind'))}</td>"
            f"<td>{e(why.get('error.class'))}: {e(why.get('error.message'))}</td>"
            f"<td class='n'>{e(why.get('attempts'))}</td>"
            f"<td class='muted'>{e(why.get('source.topic'))}[{e(why.get('source.partition'))}]@"
            f"{e(why.get('source.offset'))}</td>{button}</tr>"
        )
    out.append("</table>")
    return "\n".join(out)


def matches(letter: DeadLetter, query: str) -> bool:
    """A search: every word of ``query`` in the letter's video id or one of its reason headers."""
    text = " ".join([(letter.key or b"").decode(errors="replace"), *letter.why.values()]).lower()
    return all(word in text for word in query.lower().split())
