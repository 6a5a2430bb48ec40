"""PNG charts drawn with Pillow: grouped bars for the metrics report, loss curves for training.
matplotlib is not a dependency, and DVC's HTML plots load vega from a CDN, so they render nothing
offline."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

COLOURS = ("#7f7f7f", "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
           "#17becf")
_MARGIN = dict(left=70, right=20, top=40, bottom=60)
_LEGEND_ITEM = 110  # px per legend entry


def _label(value: float) -> str:
    return "inf" if math.isinf(value) else "n/a" if math.isnan(value) else f"{value:.3g}"


class _Canvas:
    """A white chart: title, a value axis from `bottom` to `top` with 5 grid lines, legend rows at the foot."""

    def __init__(self, title: str, width: int, height: int, bottom: float, top: float):
        self.width, self.height, self.bottom, self.top = width, height, bottom, top
        self.image = Image.new("RGB", (width, height), "white")
        self.draw = ImageDraw.Draw(self.image)
        self.small = ImageFont.load_default(size=10)
        self.draw.text((_MARGIN["left"], 10), title, fill="black", font=ImageFont.load_default(size=14))
        for i in range(5):
            value = bottom + (top - bottom) * i / 4
            self.draw.line([(_MARGIN["left"], self.y(value)), (width - _MARGIN["right"], self.y(value))], fill="#e0e0e0")
            self.draw.text((5, self.y(value) - 6), _label(value), fill="black", font=self.small)

    def y(self, value: float) -> float:
        """Value -> pixel row."""
        plot_h = self.height - _MARGIN["top"] - _MARGIN["bottom"]
        return _MARGIN["top"] + plot_h * (self.top - value) / (self.top - self.bottom)

    def legend(self, colours: dict[str, str]) -> None:
        per_row = max(1, (self.width - _MARGIN["left"]) // _LEGEND_ITEM)
        rows = math.ceil(len(colours) / per_row)
        for i, (name, colour) in enumerate(colours.items()):
            x = _MARGIN["left"] + (i % per_row) * _LEGEND_ITEM
            y = self.height - 22 - 16 * (rows - 1 - i // per_row)  # the last row at the foot
            self.draw.rectangle([x, y, x + 10, y + 10], fill=colour)
            self.draw.text((x + 14, y - 2), name, fill="black", font=self.small)

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.image.save(path)


def grouped_bars(path: str | Path, title: str, groups: list[str], series: dict[str, list[float]],
                 colours: dict[str, str], bar_width: int = 18, height: int = 340) -> None:
    """Draw one bar per series in each group (values[i] belongs to groups[i]) in its colour; a
    non-finite value gets no bar, only its label ("inf", "n/a"). The y axis starts at 0 (or at
    the lowest negative value)."""
    finite = [v for values in series.values() for v in values if math.isfinite(v)]
    top, bottom = max(finite + [0.0]) or 1.0, min(finite + [0.0])
    group_width = bar_width * len(series) + 24
    width = max(_MARGIN["left"] + group_width * len(groups) + _MARGIN["right"], 200 + _LEGEND_ITEM * len(series))
    chart = _Canvas(title, width, height, bottom, top)
    chart.draw.line([(_MARGIN["left"], chart.y(0)), (width - _MARGIN["right"], chart.y(0))], fill="black")
    for g, group in enumerate(groups):
        x0 = _MARGIN["left"] + g * group_width + 12
        for s, (name, values) in enumerate(series.items()):
            value, x = values[g], x0 + s * bar_width
            if math.isfinite(value):
                chart.draw.rectangle([x, min(chart.y(value), chart.y(0)),
                                      x + bar_width - 3, max(chart.y(value), chart.y(0))],
                                     fill=colours[name])
            else:
                chart.draw.text((x, chart.y(0) - 14), _label(value), fill="black", font=chart.small)
        chart.draw.text((x0, height - _MARGIN["bottom"] + 6), group, fill="black", font=chart.small)
    chart.legend({name: colours[name] for name in series})
    chart.save(path)


def loss_curves(metrics_dir: str | Path, path: str | Path, title: str, width: int = 720, height: int = 380) -> None:
    """Each `<loss>.tsv` that dvclive keeps in `metrics_dir` (columns step, value; `lr.tsv` left
    out) as a line over the steps, in the COLOURS order of the file names."""
    curves = {}
    for tsv in sorted(Path(metrics_dir).glob("*.tsv")):
        if tsv.stem != "lr":
            table = pd.read_csv(tsv, sep="\t")
            curves[tsv.stem.removeprefix("loss_")] = (table["step"].to_numpy(float), table[tsv.stem].to_numpy(float))
    values = np.concatenate([v for _, v in curves.values()] + [np.zeros(1)])
    finite = values[np.isfinite(values)]
    steps = np.concatenate([s for s, _ in curves.values()] + [np.zeros(1)])
    first, last = steps.min(), max(steps.max(), steps.min() + 1)
    chart = _Canvas(title, width, height, min(finite.min(), 0.0), finite.max() or 1.0)
    right = width - _MARGIN["right"]

    def x(step: float) -> float:
        return _MARGIN["left"] + (right - _MARGIN["left"]) * (step - first) / (last - first)

    colours = dict(zip(curves, COLOURS[1:] + COLOURS[:1]))
    for name, (at, value) in curves.items():
        points = [(x(s), chart.y(v)) for s, v in zip(at, value) if math.isfinite(v)]
        if len(points) > 1:
            chart.draw.line(points, fill=colours[name], width=2)
        for px, py in points[-1:]:  # the latest value as a dot: a one-point curve shows too
            chart.draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=colours[name])
    for i in range(5):  # step axis
        step = first + (last - first) * i / 4
        chart.draw.text((x(step) - 10, height - _MARGIN["bottom"] + 4), f"{step:.0f}", fill="black", font=chart.small)
    chart.legend(colours)
    chart.save(path)
