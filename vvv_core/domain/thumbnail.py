"""Thumbnail verdict from what the server answered: valid, placeholder, broken or error.

Pure: the HTTP exchange happens elsewhere (``vvv_core.safe_http``); this only judges a status
and the bytes. ``transient`` marks a verdict that another attempt may change. Decoding
reserves its pixels' memory from the group's ``MemoryBudget`` first, so many images decoding
at once never hold more than the budget.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

from vvv_core.events import clip
from vvv_core.memory import BudgetBusy, MemoryBudget

MIN_WIDTH, MIN_HEIGHT = 200, 150  # below either: YouTube's 120x90 grey placeholder and its like
# Far above any thumbnail (YouTube's largest is 1280x720): a larger canvas is a decompression
# bomb. Pillow's own guard stays on (it raises above twice Image.MAX_IMAGE_PIXELS, ~179 M);
# below that it only warns, so this decides.
MAX_PIXELS = 16_000_000
BYTES_PER_PIXEL = 4  # the most Pillow keeps for any mode these formats decode to (RGBA, RGBX, I, F)
FORMATS = ("JPEG", "PNG", "WEBP", "GIF")  # all Pillow may try: less code exposed to hostile bytes


@dataclass(frozen=True, slots=True)
class ThumbnailVerdict:
    status: str  # valid, placeholder, broken, error
    width: int | None = None
    height: int | None = None
    http_status: int | None = None
    reason: str | None = None
    transient: bool = False  # worth another attempt (timeouts, 5xx, 429)

    def detail(self, attempts: int) -> dict[str, object]:
        """As the ``ThumbnailDetail`` result record."""
        return {
            "status": self.status,
            "width": self.width,
            "height": self.height,
            "http_status": self.http_status,
            "reason": clip(self.reason),
            "attempts": attempts,
        }


def is_transient_status(http_status: int) -> bool:
    return http_status == 429 or http_status >= 500


def failed(reason: str, http_status: int | None = None) -> ThumbnailVerdict:
    """A failure another attempt may cure: timeout, connection error, 5xx, 429."""
    return ThumbnailVerdict("error", http_status=http_status, reason=reason, transient=True)


def refused(reason: str) -> ThumbnailVerdict:
    """A URL the safety policy does not let us fetch: nothing was requested."""
    return ThumbnailVerdict("broken", reason=f"refused: {reason}")


def judge(
    http_status: int,
    body: bytes,
    *,
    over_limit: int | None = None,
    budget: MemoryBudget | None = None,
    deadline: float = 0.0,
) -> ThumbnailVerdict:
    """The verdict for a complete answer; ``over_limit`` is the cap when the body exceeded it.

    With a ``budget``, the decoded pixels are reserved from it first, waiting until ``deadline``
    (``time.monotonic()``) at the most.
    """
    from PIL import Image, UnidentifiedImageError  # the consumers' extra: status tools import this module without it

    if is_transient_status(http_status):
        return failed(f"HTTP {http_status}", http_status)
    if http_status != 200:
        return ThumbnailVerdict("broken", http_status=http_status, reason=f"HTTP {http_status}")
    if over_limit is not None:
        return ThumbnailVerdict("broken", http_status=200, reason=f"body larger than {over_limit:,} bytes")
    try:
        with Image.open(io.BytesIO(body), formats=FORMATS) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                return ThumbnailVerdict(
                    "broken", width, height, 200, f"decompression bomb: {width}x{height} pixels declared"
                )
            if image.format == "JPEG":  # decode at 1/8 scale: every byte is still read, so damage shows
                image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            need = image.size[0] * image.size[1] * BYTES_PER_PIXEL
            if budget is not None and need > budget.capacity:
                return ThumbnailVerdict(
                    "broken", width, height, 200, f"{width}x{height} needs {need:,} bytes to decode, over the budget"
                )
            with budget.held(need, deadline) if budget is not None else contextlib.nullcontext():
                image.load()
    except BudgetBusy:
        return failed("memory budget for decoding busy until the deadline")
    except UnidentifiedImageError:
        return ThumbnailVerdict("broken", http_status=200, reason=f"not an image ({len(body):,} bytes)")
    except Image.DecompressionBombError as exc:
        return ThumbnailVerdict("broken", http_status=200, reason=f"decompression bomb: {exc}")
    except (OSError, SyntaxError, ValueError) as exc:
        return ThumbnailVerdict("broken", http_status=200, reason=f"damaged image: {exc}")
    status = "placeholder" if width < MIN_WIDTH or height < MIN_HEIGHT else "valid"
    return ThumbnailVerdict(status, width, height, 200, f"{width}x{height}")
