"""Grouped bar charts as PNG, drawn with Pillow: matplotlib is not a dependency, and DVC's HTML
plots load vega from a CDN, so they render nothing offline."""
from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

COLOURS = ("#7f7f7f", "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd")
_MARGIN = dict(left=70, right=20, top=40, bottom=60)


def _label(value: float) -> str:
    return "inf" if math.isinf(value) else "n/a" if math.isnan(value) else f"{value:.3g}"


def grouped_bars(path: str | Path, title: str, groups: list[str], series: dict[str, list[float]],
                 colours: dict[str, str], bar_width: int = 18, height: int = 340) -> None:
    """Draw one bar per series in each group (values[i] belongs to groups[i]) in its colour; a
    non-finite value gets no bar, only its label ("inf", "n/a"). The y axis starts at 0 (or at
    the lowest negative value)."""
    finite = [v for values in series.values() for v in values if math.isfinite(v)]
    top = max(finite + [0.0]) or 1.0
    bottom = min(finite + [0.0])
    group_width = bar_width * len(series) + 24
    width = max(_MARGIN["left"] + group_width * len(groups) + _MARGIN["right"], 200 + 110 * len(series))
    plot_h = height - _MARGIN["top"] - _MARGIN["bottom"]

    def y(value: float) -> float:  # value -> pixel row
        return _MARGIN["top"] + plot_h * (top - value) / (top - bottom)

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font, small = ImageFont.load_default(size=14), ImageFont.load_default(size=10)
    draw.text((_MARGIN["left"], 10), title, fill="black", font=font)
    for i in range(5):  # horizontal grid and tick labels
        value = bottom + (top - bottom) * i / 4
        draw.line([(_MARGIN["left"], y(value)), (width - _MARGIN["right"], y(value))], fill="#e0e0e0")
        draw.text((5, y(value) - 6), _label(value), fill="black", font=small)
    draw.line([(_MARGIN["left"], y(0)), (width - _MARGIN["right"], y(0))], fill="black")
    for g, group in enumerate(groups):
        x0 = _MARGIN["left"] + g * group_width + 12
        for s, (name, values) in enumerate(series.items()):
            value, x = values[g], x0 + s * bar_width
            if math.isfinite(value):
                draw.rectangle([x, min(y(value), y(0)), x + bar_width - 3, max(y(value), y(0))],
                               fill=colours[name])
            else:
                draw.text((x, y(0) - 14), _label(value), fill="black", font=small)
        draw.text((x0, height - _MARGIN["bottom"] + 6), group, fill="black", font=small)
    for s, name in enumerate(series):  # legend
        x = _MARGIN["left"] + s * 110
        draw.rectangle([x, height - 22, x + 10, height - 12], fill=colours[name])
        draw.text((x + 14, height - 24), name, fill="black", font=small)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
