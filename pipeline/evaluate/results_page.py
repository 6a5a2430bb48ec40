"""The results page: one HTML file (results/index.html) with everything a run produced, offline.

One run on one page (`dvc plots diff` compares runs by their image plots).
This page is plain HTML with inline CSS and relative links (it sits in results/ beside
compare/ and sheets/), so it opens from a file:// URL: the compare videos with their contact sheets, the
metrics tables with what each figure means (pipeline/evaluate/report.py), the metric plots, the loss
curves and sample grids of training, the crop summary and params.yaml. Tables are drawn from
the keys of the data, so a figure the metrics stage adds shows up here unchanged. The bytes
depend only on the inputs (sorted listings, no timestamps): a rerun writes the same file.
"""
from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import Sequence
from urllib.parse import quote

import pandas as pd

from pipeline.common.files import atomic_file
from pipeline.common.params import run_params_text
from pipeline.evaluate.definitions import FID_NOTE, METRICS, SCORED, SCORED_NOTES, SCORED_TITLES, format_number
from pipeline.models import label
from pipeline.store.tables import read_json, read_table, required

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; color: #222; max-width: 1280px; margin: 0 auto; padding: 0 16px 32px; }
nav a { margin-right: 1em; }
h2 { border-bottom: 1px solid #ccc; margin-top: 32px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 12px; }
.wide { grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 16px 12px; }
video, img { display: block; max-width: 100%; height: auto; }
figure { margin: 0; }
figcaption { font-weight: bold; margin: 4px 0; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 16px; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f0f0f0; }
pre { background: #f6f6f6; padding: 8px; overflow: auto; font-size: 12px; }
dt { font-weight: bold; margin-top: 6px; }
"""


def _text(value) -> str:
    return html.escape(str(value))


def _href(path: Path, page_dir: Path) -> str:
    """`path` as a link from a page in `page_dir`: relative, URL-quoted, escaped for an attribute."""
    return html.escape(quote(Path(os.path.relpath(os.path.abspath(path), os.path.abspath(page_dir))).as_posix()))


def _header(key: str) -> str:
    """A column's header: the report's name for a metric, else the key itself."""
    return METRICS[key].header if key in METRICS else key


def _prose(text: str) -> str:
    """Escaped text with the report's markdown `code` and *emphasis* as HTML."""
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", _text(text))
    return re.sub(r"\*([^*]+)\*", r"<em>\1</em>", text)


def _cell(value) -> str:
    """A table cell: numbers (and missing figures, shown as a dash) right-aligned."""
    numeric = value is None or isinstance(value, (int, float)) and not isinstance(value, bool)
    return f'<td class="n">{_text(format_number(value))}</td>' if numeric else f"<td>{_text(format_number(value))}</td>"


def _table(rows: Sequence[dict]) -> str:
    """An HTML table of `rows`, one column per key in order of first appearance."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    head = "".join(f"<th>{_text(_header(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(row.get(c)) for c in columns) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _flat(data: dict, prefix: str = "") -> dict:
    """Nested dicts as one level with dotted keys: {"A": {"train": {"faces": 3}}} -> {"A.train.faces": 3}."""
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _key_values(data: dict) -> str:
    return _table([{"figure": key, "value": value} for key, value in _flat(data).items()])


def _image(path: Path, page_dir: Path, alt: str) -> str:
    return f'<img src="{_href(path, page_dir)}" alt="{_text(alt)}" loading="eager">'


def _videos_section(results_dir: Path, models: Sequence[str], directions: dict[str, str], page_dir: Path) -> str:
    """Each compare video (input and every model side by side), its contact sheet a click away."""
    compare, sheets = (required(results_dir / folder, "merge_video") for folder in ("compare", "sheets"))
    parts = ['<h2 id="videos">Translated test videos</h2>',
             f"<p>Each video shows {_text(', '.join(['the input'] + [label(m) for m in models]))} "
             "side by side, with the source audio if it has any (unmute it in the controls); its contact sheet shows "
             "a few frames at a glance.</p>", '<div class="grid wide">']
    for video in sorted(compare.glob("*.mp4")):
        name = video.stem
        caption = f"{name} ({directions[name]})" if name in directions else name
        alone = [f'<a href="{_href(results_dir / m / video.name, page_dir)}">{_text(label(m))}</a>'
                 for m in models if (results_dir / m / video.name).exists()]
        sheet = sheets / f"{name}.png"
        parts += ["<figure>", f"<figcaption>{_text(caption)}</figcaption>",
                  f'<video src="{_href(video, page_dir)}" controls autoplay muted loop playsinline preload="auto">'
                  "</video>",
                  f"<p>Each model alone: {' | '.join(alone)}</p>" if alone else "",
                  f"<details><summary>contact sheet</summary>{_image(sheet, page_dir, f'contact sheet of {name}')}"
                  "</details>" if sheet.exists() else "", "</figure>"]
    return "\n".join(parts + ["</div>"])


def _metrics_section(metrics_dir: Path, table: pd.DataFrame, page_dir: Path) -> str:
    """Overall figures per kind of row and direction, per-video figures, what they mean, the metric plots."""
    overall = read_json(metrics_dir / "translation.json", "metrics")
    parts = ['<h2 id="metrics">Metrics</h2>',
             f'<p>The same figures as <a href="{_href(metrics_dir / "report.md", page_dir)}">report.md</a>.</p>']
    for scored in (kind for kind in SCORED if kind in overall):
        by_model = overall[scored]
        parts += [f"<h3>Overall: {_text(SCORED_TITLES[scored])}</h3>", f"<p>{_prose(SCORED_NOTES[scored])}</p>"]
        for way in sorted({way for by_way in by_model.values() for way in by_way}):
            rows = [{"model": model, **by_way[way]} for model, by_way in by_model.items() if way in by_way]
            parts += [f"<h4>{_text(way)}</h4>", _table(rows)]
    parts += ["<h3>Per video</h3>", _table(table.to_dict("records")), "<h3>What the figures mean</h3>", "<dl>"]
    parts += [f"<dt>{_text(metric.header)}</dt><dd>{_prose(metric.meaning)}</dd>" for metric in METRICS.values()]
    parts += ["</dl>", f"<p>{_prose(FID_NOTE)}</p>", '<div class="grid wide">']
    order = list(METRICS)
    plots = sorted(required(metrics_dir / "plots", "metrics").glob("*.png"),
                   key=lambda p: (order.index(p.stem) if p.stem in order else len(order), p.name))
    parts += [_image(plot, page_dir, _header(plot.stem)) for plot in plots]
    return "\n".join(parts + ["</div>"])


def _training_section(logs_dir: Path, models: Sequence[str], page_dir: Path) -> str:
    """Per model: the loss curves and latest sample grid (logs/<model>/plots/images) and the last logged losses."""
    parts = ['<h2 id="training">Training</h2>']
    for model in models:
        images = sorted(required(logs_dir / model / "plots" / "images", f"train_{model}").glob("*.png"))
        summary = read_json(logs_dir / model / "metrics.json", f"train_{model}")
        parts += [f"<h3>{_text(label(model))}</h3>", '<div class="grid">',
                  *(_image(image, page_dir, f"{model} {image.stem}") for image in images), "</div>",
                  "<p>Last logged values:</p>", _key_values(summary)]
    return "\n".join(parts)


def page_html(results_dir: Path, metrics_dir: Path, logs_dir: Path, params_path: Path, models: Sequence[str],
              page_dir: Path) -> str:
    """The page's HTML, with links relative to `page_dir` (the folder the page is written to)."""
    table = read_table(metrics_dir / "translation.csv", "metrics")
    directions = dict(zip(table["video"], table["direction"])) if {"video", "direction"} <= set(table) else {}
    crops = read_json(metrics_dir / "crop.json", "crop_faces")
    params = run_params_text(params_path)  # a missing or malformed params file is a one-line error
    sections = [_videos_section(results_dir, models, directions, page_dir),
                _metrics_section(metrics_dir, table, page_dir),
                _training_section(logs_dir, models, page_dir),
                '<h2 id="crops">Face crops</h2>',
                f"<p>{_text(metrics_dir.name)}/crop.json: frames and faces per domain and split, detector runs, "
                "box jitter.</p>",
                _key_values(crops),
                '<h2 id="params">Params of the run</h2>',
                f"<p>{_text(params_path.name)}, without the profiles the run does not use</p>",
                f"<pre>{_text(params)}</pre>"]
    nav = " ".join(f'<a href="#{anchor}">{title}</a>' for anchor, title in
                   (("videos", "Videos"), ("metrics", "Metrics"), ("training", "Training"), ("crops", "Face crops"),
                    ("params", "Params")))
    return "\n".join(['<!doctype html>', '<html lang="en">', "<head>", '<meta charset="utf-8">',
                      "<title>facecycle results</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
                      "<h1>facecycle results</h1>", f"<nav>{nav}</nav>", *sections, "</body>", "</html>"]) + "\n"


def write_results_page(results_dir: str | Path, metrics_dir: str | Path, logs_dir: str | Path,
                       params_path: str | Path, models: Sequence[str], out: str | Path) -> None:
    """Write the page to `out` (atomically), linking to the files it shows from there."""
    out = Path(out)
    text = page_html(Path(results_dir), Path(metrics_dir), Path(logs_dir), Path(params_path), models, out.parent)
    with atomic_file(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
