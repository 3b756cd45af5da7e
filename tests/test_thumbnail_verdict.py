"""The thumbnail verdict from a status and the bytes (pure: no broker, no server): every verdict whole, the
formats taken, the canvas and memory caps at their boundaries, what decoding reserves."""

from __future__ import annotations

import io
import struct
import time
import zlib

import pytest
from PIL import Image
from result_detail import published

from vvv_core.domain.thumbnail import ThumbnailVerdict, failed, judge, refused
from vvv_core.memory import MemoryBudget
from vvv_core.standins import image_bytes


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` and holds no pixels: a canvas judged from its header alone."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit a pixel, greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def in_format(fmt: str, width: int = 320, height: int = 180) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize(
    ("http_status", "verdict"),
    [
        (404, ThumbnailVerdict("broken", http_status=404, reason="HTTP 404")),
        (403, ThumbnailVerdict("broken", http_status=403, reason="HTTP 403")),
        (301, ThumbnailVerdict("broken", http_status=301, reason="HTTP 301")),
        (430, ThumbnailVerdict("broken", http_status=430, reason="HTTP 430")),
        (499, ThumbnailVerdict("broken", http_status=499, reason="HTTP 499")),
        # worth another attempt: never broken
        (429, ThumbnailVerdict("error", http_status=429, reason="HTTP 429", transient=True)),
        (500, ThumbnailVerdict("error", http_status=500, reason="HTTP 500", transient=True)),
        (501, ThumbnailVerdict("error", http_status=501, reason="HTTP 501", transient=True)),
        (503, ThumbnailVerdict("error", http_status=503, reason="HTTP 503", transient=True)),
    ],
)
def test_an_answer_other_than_200_is_judged_by_its_status_alone(http_status, verdict):
    assert judge(http_status, image_bytes(320, 180)) == verdict


def test_a_body_over_the_cap_is_broken_and_names_the_cap():
    verdict = judge(200, b"\xff\xd8" + b"\0" * 100, over_limit=200_000)
    assert verdict == ThumbnailVerdict("broken", http_status=200, reason="body larger than 200,000 bytes")


@pytest.mark.parametrize(
    ("width", "height", "status"),
    [
        (320, 180, "valid"),
        (200, 150, "valid"),  # the smallest a real thumbnail is
        (199, 150, "placeholder"),
        (200, 149, "placeholder"),
        (199, 300, "placeholder"),  # narrow, however tall
        (300, 149, "placeholder"),  # short, however wide
        (120, 90, "placeholder"),  # YouTube's grey placeholder
    ],
)
def test_a_real_image_is_valid_from_200x150_and_a_placeholder_below(width, height, status):
    verdict = judge(200, image_bytes(width, height))
    assert verdict == ThumbnailVerdict(status, width, height, 200, f"{width}x{height}")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_the_four_thumbnail_formats_are_taken(fmt):
    assert judge(200, in_format(fmt)) == ThumbnailVerdict("valid", 320, 180, 200, "320x180")


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "ICO", "PPM"])
def test_any_other_format_is_not_an_image_even_one_pillow_could_read(fmt):
    body = in_format(fmt, 64, 64)  # Pillow reads these; the verdict never lets it try
    assert judge(200, body) == ThumbnailVerdict("broken", http_status=200, reason=f"not an image ({len(body):,} bytes)")


def test_a_page_instead_of_an_image_is_not_an_image():
    body = b"<!doctype html><html><body>nope</body></html>"
    assert judge(200, body) == ThumbnailVerdict("broken", http_status=200, reason="not an image (45 bytes)")


def test_a_truncated_image_is_damaged():
    verdict = judge(200, image_bytes(1280, 720)[:-2000])
    assert (verdict.status, verdict.width, verdict.http_status, verdict.transient) == ("broken", None, 200, False)
    assert verdict.reason.startswith("damaged image: ")


def test_a_canvas_of_16_megapixels_is_judged_and_one_pixel_more_is_a_bomb():
    """16,000,000 pixels (4000x4000) is the cap, not a bomb yet: here it is over a small decoding budget instead."""
    budget = MemoryBudget(1_000_000)
    assert judge(200, png_header(4000, 4000), budget=budget) == ThumbnailVerdict(
        "broken", 4000, 4000, 200, "4000x4000 needs 64,000,000 bytes to decode, over the budget"
    )
    assert judge(200, png_header(4001, 4000), budget=budget) == ThumbnailVerdict(
        "broken", 4001, 4000, 200, "decompression bomb: 4001x4000 pixels declared"
    )
    assert budget.peak == 0  # neither decoded


def test_a_canvas_pillow_itself_refuses_is_a_bomb():
    """Over twice Pillow's MAX_IMAGE_PIXELS (~179 M), Pillow raises before the size is even known here."""
    verdict = judge(200, png_header(20_000, 20_000))
    assert (verdict.status, verdict.width, verdict.http_status, verdict.transient) == ("broken", None, 200, False)
    assert verdict.reason.startswith("decompression bomb: Image size (400000000 pixels) exceeds limit")


@pytest.mark.parametrize(
    ("fmt", "width", "height", "need", "status"),
    [
        ("JPEG", 1280, 720, 160 * 90 * 4, "valid"),  # a JPEG decodes at 1/8 scale: 4 bytes a pixel of that
        ("JPEG", 203, 157, 26 * 20 * 4, "valid"),  # rounded up
        ("JPEG", 8, 64, 1 * 8 * 4, "placeholder"),
        ("JPEG", 64, 8, 8 * 1 * 4, "placeholder"),
        ("PNG", 320, 180, 320 * 180 * 4, "valid"),  # any other format whole
        ("PNG", 180, 320, 180 * 320 * 4, "placeholder"),
    ],
)
def test_decoding_reserves_what_its_pixels_need_and_fits_a_budget_of_exactly_that(fmt, width, height, need, status):
    budget = MemoryBudget(need)
    verdict = judge(200, image_bytes(width, height, fmt), budget=budget, deadline=time.monotonic() + 10)
    assert verdict == ThumbnailVerdict(status, width, height, 200, f"{width}x{height}")
    assert (budget.peak, budget.used) == (need, 0)


def test_an_image_needing_more_than_the_whole_budget_is_broken_without_decoding():
    budget = MemoryBudget(1_000_000)
    assert judge(200, png_header(3000, 2000), budget=budget) == ThumbnailVerdict(
        "broken", 3000, 2000, 200, "3000x2000 needs 24,000,000 bytes to decode, over the budget"
    )
    assert budget.peak == 0


def test_no_room_to_decode_before_the_deadline_is_an_error_worth_retrying():
    budget = MemoryBudget(1_000_000)
    budget.reserve(1_000_000, deadline=0.0)  # other images hold all of it
    verdict = judge(200, image_bytes(320, 180, "PNG"), budget=budget, deadline=time.monotonic())
    reason = "memory budget for decoding busy until the deadline"
    assert verdict == ThumbnailVerdict("error", reason=reason, transient=True)
    assert budget.used == 1_000_000  # it took nothing


def test_a_refused_url_is_broken_and_says_why():
    assert refused("host evil.example.com not allowed") == ThumbnailVerdict(
        "broken", reason="refused: host evil.example.com not allowed"
    )


def test_a_failed_fetch_is_an_error_worth_retrying():
    assert failed("timed out") == ThumbnailVerdict("error", reason="timed out", transient=True)
    assert failed("HTTP 502", 502) == ThumbnailVerdict("error", http_status=502, reason="HTTP 502", transient=True)


def test_the_detail_is_the_published_thumbnail_detail():
    assert published("ThumbnailDetail", judge(200, image_bytes(320, 180)).detail(2)) == {
        "status": "valid",
        "width": 320,
        "height": 180,
        "http_status": 200,
        "reason": "320x180",
        "attempts": 2,
    }
