"""Credits a media call costs, from the catalogue's ``pricing`` rows, in ``Decimal``.

The rules (the catalogue is the only source; the relay's ledger is the truth, so these are
estimates):

* Image: the row whose ``size`` equals the size asked for (compared case-insensitively, ``x``
  or ``×``) gives the credits per image; quality does not change the price.
* Video: among the rows, prefer those whose ``mode`` equals the mode (when any row carries a
  ``mode``), else the rows without a ``mode``; among those, prefer the row whose ``resolution``
  matches case-insensitively, else rows without a ``resolution``. Then:

  - a row whose ``duration`` equals the seconds asked for gives the whole video's price;
  - else a row without ``duration`` is credits per second: ``price × seconds``;
  - else (rows only for other durations: e.g. a mode priced only up to 10 s) there is no price.

``None`` means the catalogue has no price for that combination (not free): say so to the user.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from ._models import ImageEditModel, ImageModel, VideoModel, VideoPrice

__all__ = ["image_price", "video_price"]


def _size_key(size: str) -> str:
    return size.strip().lower().replace("×", "x").replace(" ", "")


def image_price(model: ImageModel | ImageEditModel, size: str | None) -> Decimal | None:
    """Credits for one image of ``size``, or None when the catalogue prices no such size (or no
    size was given: the relay then picks its own default, whose price is not listed)."""
    if size is None:
        return None
    wanted = _size_key(size)
    for row in model.pricing:
        if row.size is not None and row.price is not None and _size_key(row.size) == wanted:
            return row.price
    return None


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.strip().lower() == b.strip().lower()


def _rows_for(rows: Sequence[VideoPrice], mode: str | None, resolution: str | None) -> list[VideoPrice]:
    rows = [row for row in rows if row.price is not None]
    by_mode = [row for row in rows if _same(row.mode, mode)]
    rows = by_mode or [row for row in rows if row.mode is None]
    by_resolution = [row for row in rows if _same(row.resolution, resolution)]
    return by_resolution or [row for row in rows if row.resolution is None]


def video_price(
    model: VideoModel, *, resolution: str | None, seconds: float | None, mode: str | None = None
) -> Decimal | None:
    """Credits for a video of ``seconds`` at ``resolution`` in ``mode`` (see the module's rules),
    or None when the catalogue has no price for that combination or ``seconds`` is unknown."""
    if seconds is None or seconds <= 0:
        return None
    rows = _rows_for(model.pricing, mode, resolution)
    if not rows:
        return None
    wanted = Decimal(str(seconds))
    for row in rows:
        if row.duration is not None and Decimal(str(row.duration)) == wanted:
            return row.price
    per_second = [row for row in rows if row.duration is None]
    price = per_second[0].price if per_second else None
    return None if price is None else price * wanted
