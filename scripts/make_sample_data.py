"""Rebuild vvv_core/sample_data/trending_sample.csv from the real YouTube trending files.

Run by hand (it reads ../shared, which the project never reads at run time):
    python scripts/make_sample_data.py ../shared/data/youtube_trending
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

# region -> (file, date parser, column names). Only GB and US exist for 2017; the other five
# regions are stand-ins taken from the 2020 files of the nearest available market.
SOURCES = {
    "GB": ("datasnaek_v1_2017/GBvideos.csv", "v1"),
    "US": ("datasnaek_v1_2017/USvideos.csv", "v1"),
    "AT": ("rsrishav_2020_head/DE_youtube_trending_data.csv", "2020"),
    "PL": ("rsrishav_2020_head/RU_youtube_trending_data.csv", "2020"),
    "NL": ("rsrishav_2020_head/FR_youtube_trending_data.csv", "2020"),
    "SE": ("rsrishav_2020_head/GB_youtube_trending_data.csv", "2020"),
    "NO": ("rsrishav_2020_head/US_youtube_trending_data.csv", "2020"),
}
VIDEOS_PER_REGION = 40  # with 2+ snapshots
SINGLE_SNAPSHOT_VIDEOS = 4  # "insufficient data" cases
MAX_SNAPSHOTS = 5


def rows(path: Path, kind: str):
    with path.open(newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            if kind == "v1":
                if None in rec or rec.get("date", "").count(".") != 1:  # the file's known glitch lines
                    continue
                day, month = rec["date"].split(".")
                yield (
                    rec["video_id"],
                    rec["title"],
                    int(rec["views"]),
                    int(rec["likes"]),
                    int(rec["comment_total"]),
                    f"2017-{month}-{day} 00:00:00",
                    rec["thumbnail_link"],
                )
            else:
                yield (
                    rec["video_id"],
                    rec["title"],
                    int(rec["view_count"]),
                    int(rec["likes"]),
                    int(rec["comment_count"]),
                    rec["trending_date"],
                    rec["thumbnail_link"],
                )


def main(root: Path, out: Path) -> None:
    taken: set[str] = set()
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            ["region", "video_id", "title", "view_count", "likes", "comments", "fetched_at", "thumbnail_url", "source"]
        )
        for region, (name, kind) in SOURCES.items():
            by_video = defaultdict(list)
            for r in rows(root / name, kind):
                if r[0] not in taken and len(r[0]) == 11:
                    by_video[r[0]].append(r)
            multi = [v for v, s in by_video.items() if len(s) >= 2][:VIDEOS_PER_REGION]
            single = [v for v, s in by_video.items() if len(s) == 1][:SINGLE_SNAPSHOT_VIDEOS]
            for video_id in multi + single:
                taken.add(video_id)
                for vid, title, views, likes, comments, fetched, thumb in by_video[video_id][-MAX_SNAPSHOTS:]:
                    w.writerow([region, vid, title, views, likes, comments, fetched, thumb, name])


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).resolve().parent.parent / "vvv_core/sample_data/trending_sample.csv")
