"""The liveness verdict from oEmbed's answer, the ids never asked about and the request itself (pure: no broker,
no server)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from result_detail import published

from vvv_core.domain.liveness import LivenessVerdict, failed, invalid_id, judge, oembed_url

PRIVATE = "oEmbed: private or embedding disabled"


@pytest.mark.parametrize(
    ("http_status", "verdict"),
    [
        (200, LivenessVerdict("alive", 200)),
        (404, LivenessVerdict("deleted", 404, "oEmbed: not found")),
        (401, LivenessVerdict("private", 401, PRIVATE)),
        (403, LivenessVerdict("private", 403, PRIVATE)),
        # never a verdict about the video: retried, unknown after the last attempt
        (429, LivenessVerdict("unknown", 429, "HTTP 429", transient=True)),
        (500, LivenessVerdict("unknown", 500, "HTTP 500", transient=True)),
        (503, LivenessVerdict("unknown", 503, "HTTP 503", transient=True)),
        # anything else: unknown, and not worth asking again
        (201, LivenessVerdict("unknown", 201, "unexpected HTTP 201")),
        (302, LivenessVerdict("unknown", 302, "unexpected HTTP 302")),
        (400, LivenessVerdict("unknown", 400, "unexpected HTTP 400")),
        (402, LivenessVerdict("unknown", 402, "unexpected HTTP 402")),
        (405, LivenessVerdict("unknown", 405, "unexpected HTTP 405")),
        (410, LivenessVerdict("unknown", 410, "unexpected HTTP 410")),
        (430, LivenessVerdict("unknown", 430, "unexpected HTTP 430")),
        (499, LivenessVerdict("unknown", 499, "unexpected HTTP 499")),
    ],
)
def test_each_answer_of_oembed_is_one_verdict(http_status, verdict):
    assert judge(http_status) == verdict


@pytest.mark.parametrize("video_id", ["J78aPJ3VyNs", "a-b_c-d_e-f", "00000000000", "___________"])
def test_a_plausible_id_is_asked_about(video_id):
    assert invalid_id(video_id) is None


@pytest.mark.parametrize(
    "video_id", ["J78aPJ3VyN", "J78aPJ3VyNsx", "J78aPJ3Vy s", "J78aPJ3Vy/s", "J78aPJ3VyNs\n", "J78aPJ3VyNé", ""]
)
def test_an_impossible_id_is_unknown_without_a_request(video_id):
    reason = "rejected: not a YouTube video id (11 of A-Z a-z 0-9 _ -)"
    assert invalid_id(video_id) == LivenessVerdict("unknown", reason=reason)


def test_the_request_names_the_video_and_asks_for_json():
    url = urlsplit(oembed_url("https://www.youtube.com/oembed", "J78aPJ3VyNs"))
    assert (url.scheme, url.netloc, url.path) == ("https", "www.youtube.com", "/oembed")
    assert parse_qs(url.query, strict_parsing=True) == {
        "url": ["https://youtube.com/watch?v=J78aPJ3VyNs"],
        "format": ["json"],
    }


def test_a_failed_request_says_nothing_about_the_video_and_is_worth_retrying():
    assert failed("timed out after 8 s") == LivenessVerdict("unknown", None, "timed out after 8 s", transient=True)
    assert failed("HTTP 502", 502) == LivenessVerdict("unknown", 502, "HTTP 502", transient=True)


def test_the_detail_is_the_published_liveness_detail():
    assert published("LivenessDetail", judge(403).detail(3)) == {
        "status": "private",
        "http_status": 403,
        "reason": PRIVATE,
        "attempts": 3,
    }
