"""Where a hit happened, as SVG without script: map tiles if HQ has a tile server, else a plot.

With ``console.tile_url`` (``.../{z}/{x}/{y}.png``, the usual slippy-map scheme)
the hit sits on a 3 x 3 block of tiles around it; without one, the hit and the
other recent positions are plotted on plain axes with their coordinates, so an
operator still sees where it was relative to the others.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Final

TILE: Final = 256
ZOOM: Final = 16
VIEW_W: Final = 480
VIEW_H: Final = 320
PLOT_W: Final = 480
PLOT_H: Final = 320
MARGIN: Final = 40


def tile_xy(lat: float, lon: float, zoom: int) -> tuple[float, float]:
    """Fractional slippy-map tile coordinates (Web Mercator) of a position."""
    lat = max(-85.0511, min(85.0511, lat))
    n = 2.0**zoom
    x = (lon + 180.0) / 360.0 * n
    rad = math.radians(lat)
    y = (1.0 - math.asinh(math.tan(rad)) / math.pi) / 2.0 * n
    return x, y


def tile_map(tile_url: str, lat: float, lon: float, zoom: int = ZOOM) -> str:
    """An SVG of the tiles around the position with a marker on it."""
    fx, fy = tile_xy(lat, lon, zoom)
    cx, cy = int(fx), int(fy)
    px, py = (fx - cx + 1) * TILE, (fy - cy + 1) * TILE  # the point inside the 3x3 block
    left, top = px - VIEW_W / 2, py - VIEW_H / 2
    images = []
    limit = 2**zoom
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            x, y = (cx + dx) % limit, cy + dy
            if not 0 <= y < limit:
                continue
            url = tile_url.replace("{z}", str(zoom)).replace("{x}", str(x)).replace("{y}", str(y))
            images.append(
                f'<image href="{html.escape(url)}" x="{(dx + 1) * TILE}" y="{(dy + 1) * TILE}" '
                f'width="{TILE}" height="{TILE}"/>'
            )
    return (
        f'<svg class="map" role="img" viewBox="{left:.1f} {top:.1f} {VIEW_W} {VIEW_H}" '
        f'width="{VIEW_W}" height="{VIEW_H}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{lat:.5f}, {lon:.5f}</title>{''.join(images)}"
        f'<circle cx="{px:.1f}" cy="{py:.1f}" r="9" fill="#d62828" fill-opacity="0.85" '
        f'stroke="#fff" stroke-width="3"/></svg>'
    )


def plot(here: tuple[float, float], others: Sequence[tuple[float, float]]) -> str:
    """A plain SVG plot of ``here`` (red) among ``others`` (grey), with the axes' coordinates."""
    points = [here, *others]
    lats = [p[0] for p in points]
    lons = [p[1] for p in points]
    span_lat = max(max(lats) - min(lats), 0.002) * 1.2
    span_lon = max(max(lons) - min(lons), 0.002) * 1.2
    south = (max(lats) + min(lats)) / 2 - span_lat / 2
    west = (max(lons) + min(lons)) / 2 - span_lon / 2

    def xy(lat: float, lon: float) -> tuple[float, float]:
        x = MARGIN + (lon - west) / span_lon * (PLOT_W - 2 * MARGIN)
        y = PLOT_H - MARGIN - (lat - south) / span_lat * (PLOT_H - 2 * MARGIN)
        return x, y

    dots = []
    for lat, lon in others:
        x, y = xy(lat, lon)
        dots.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="#8d99ae"/>')
    hx, hy = xy(*here)
    inner_w, inner_h = PLOT_W - 2 * MARGIN, PLOT_H - 2 * MARGIN
    return (
        f'<svg class="plot" role="img" viewBox="0 0 {PLOT_W} {PLOT_H}" width="{PLOT_W}" '
        f'height="{PLOT_H}" xmlns="http://www.w3.org/2000/svg" direction="ltr">'
        f"<title>{here[0]:.5f}, {here[1]:.5f}</title>"
        f'<rect x="{MARGIN}" y="{MARGIN}" width="{inner_w}" height="{inner_h}" fill="#f4f6f8" '
        f'stroke="#adb5bd"/>'
        f'<text x="{MARGIN}" y="{PLOT_H - 12}" font-size="11" fill="#495057">'
        f"{west:.4f}</text>"
        f'<text x="{PLOT_W - MARGIN}" y="{PLOT_H - 12}" font-size="11" fill="#495057" '
        f'text-anchor="end">{west + span_lon:.4f}</text>'
        f'<text x="4" y="{PLOT_H - MARGIN}" font-size="11" fill="#495057">{south:.4f}</text>'
        f'<text x="4" y="{MARGIN - 6}" font-size="11" fill="#495057">{south + span_lat:.4f}</text>'
        f"{''.join(dots)}"
        f'<circle cx="{hx:.1f}" cy="{hy:.1f}" r="8" fill="#d62828" stroke="#fff" '
        f'stroke-width="2"/></svg>'
    )
