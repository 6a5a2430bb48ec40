"""Write the metrics stage's outputs: the DVC metrics (summary.json), the overall figures (translation.json),
a per-video CSV, PNG plots and a markdown report."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from pipeline.common.charts import COLOURS, grouped_bars
from pipeline.common.domains import domains_of
from pipeline.common.files import atomic_dir, atomic_file
from pipeline.evaluate.definitions import FID_NOTE, METRICS, PLOTS, SCORED, SCORED_NOTES, SCORED_TITLES, format_number
from pipeline.evaluate.metrics import INPUT, Evaluation
from pipeline.store.tables import read_table


def _json_safe(value):
    """JSON has no NaN or infinity: both become null."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _table(frame: pd.DataFrame, keys: list[str]) -> list[str]:
    """A markdown table of `keys` columns followed by the METRICS columns present in `frame`."""
    columns = keys + [m for m in METRICS if m in frame]
    headers = keys + [METRICS[m].header for m in columns[len(keys):]]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(format_number(row.get(c)) for c in columns) + " |")
    return lines


def _models(videos: pd.DataFrame) -> list[str]:
    """The input first, then the models in the order evaluated."""
    return [INPUT] + [m for m in videos["model"].unique() if m != INPUT]




def temporal_line(evaluation: Evaluation) -> str:
    """Which translation the merged videos (results/) show, per model."""
    parts = []
    for model, mode in evaluation.temporal.items():
        if mode["temporal"] == "none":
            parts.append(f"{model}: per-frame translation (row `{model}`)")
        else:
            settings = ", ".join(f"{k} {v}" for k, v in mode.items() if k != "temporal")
            parts.append(f"{model}: stabilised along the input's motion, {settings} (row `{shown_row(model, mode)}`; "
                         f"row `{model}` is the per-frame translation)")
    return "Merged videos (results/) show: " + "; ".join(parts) + "."


def _overall_lines(evaluation: Evaluation, scored: str) -> list[str]:
    """The overall tables of one kind of row, a table per direction."""
    videos = evaluation.videos[evaluation.videos["scored"] == scored].dropna(axis=1, how="all")
    overall = evaluation.overall[scored]
    lines = [f"## Overall: {SCORED_TITLES[scored]}", "", SCORED_NOTES[scored], ""]
    for way in sorted(videos["direction"].unique()):
        rows = pd.DataFrame([{"model": m, **overall[m][way]} for m in _models(videos) if way in overall.get(m, {})])
        first_row = rows.iloc[0]
        lines += [f"### {' -> '.join(domains_of(way))}: {first_row['videos']} video(s), {first_row['frames']} frames, "
                  f"{first_row['described']} described per model",
                  "", *_table(rows, ["model"]), ""]
    return lines


def faceless_line(evaluation: Evaluation) -> str:
    """The test videos without a face, whose results are the source."""
    if not evaluation.faceless:
        return ""
    return (f"No face found in test video(s) {', '.join(evaluation.faceless)}: no face: result is the source "
            "(nothing is scored for them).")


def markdown(evaluation: Evaluation) -> str:
    """The report: overall and per-video tables comparing the models, what each figure means, the plots."""
    videos, params = evaluation.videos, evaluation.params
    first = videos.drop_duplicates("video")
    counts = ", ".join(f"{d}: {', '.join(first.loc[first['domain'] == d, 'video'])}"
                       for d in sorted(first["domain"].unique()))
    lines = ["# Translation metrics", "",
             f"{len(first)} test videos ({counts}). Models: {', '.join(_models(videos)[1:])}. Scored twice: on "
             + " and on ".join(SCORED_TITLES[kind] for kind in SCORED if kind in evaluation.overall) + ".", ""]
    if evaluation.faceless:
        lines += [faceless_line(evaluation), ""]
    lines += [temporal_line(evaluation), ""]
    for scored in SCORED:
        if scored in evaluation.overall:
            lines += _overall_lines(evaluation, scored)
    lines += ["## Per video", "", *_table(videos, ["scored", "video", "direction", "model"]), "",
              "## What the figures mean", ""]
    lines += [f"- **{metric.header}**: {metric.meaning}" for metric in METRICS.values()]
    rect = ("dlib's HOG detector in the resized crop" if params.face_rect == "detect"
            else "the crop's centre square where crop_faces put the detector's box (data.margin)")
    lines += ["", f"Identity settings: crops resized to {params.face_size} px, face rectangle from {rect}, 5 landmarks, "
              f"dlib ResNet descriptor of 1 test frame in {params.identity_every}; centroids from "
              + ", ".join(f"{n} {d} train crops" for d, n in evaluation.real_faces.items()) + ".", "", FID_NOTE, "",
              "## Plots", ""]
    lines += [f"![{METRICS[m].header}](plots/{m}.png)" for m in PLOTS if m in videos]
    return "\n".join(lines) + "\n"


def plot(evaluation: Evaluation, out_dir: Path) -> None:
    """One grouped bar chart per metric: a group per video and per direction overall, a bar per model
    and kind of row (the merged rows' bars are labelled `merged`)."""
    videos = evaluation.videos
    ways = sorted(videos["direction"].unique())
    groups = list(videos["video"].unique()) + [f"all {w}" for w in ways]
    bars = [(scored, model) for scored in SCORED if scored in evaluation.overall
            for model in _models(videos[videos["scored"] == scored])]
    name = {bar: bar[1] if bar[0] == "crops" else f"{bar[1]} merged" for bar in bars}
    colours = {name[bar]: COLOURS[i % len(COLOURS)] for i, bar in enumerate(bars)}
    for metric in PLOTS:
        if metric not in videos:
            continue
        series = {}
        for scored, model in bars:
            rows = videos[(videos["scored"] == scored) & (videos["model"] == model)].set_index("video")[metric]
            overall = evaluation.overall[scored].get(model, {})
            values = [float(rows.get(v, float("nan"))) for v in groups[:-len(ways)]]
            values += [float(overall.get(w, {}).get(metric, float("nan"))) for w in ways]
            if not all(math.isnan(v) for v in values):
                series[name[scored, model]] = values
        grouped_bars(out_dir / f"{metric}.png", METRICS[metric].header, groups, series, colours)


def read_changed(path: str | Path) -> pd.DataFrame:
    """merge_video's changed.csv: per video and model, the share of frame pixels the merge changed."""
    return read_table(Path(path), "merge_video",
                      ("video", "model", "changed_share", "changed_max"), {"video": str, "model": str})


def changed_section(changed: pd.DataFrame) -> str:
    """Report lines: how much of each merged frame each model changed (the rest is the source video)."""
    lines = ["", "## Pixels changed by merge_video", "",
             "Share of the frame's pixels that differ from the source frame in the merged video, before encoding "
             "(mean over the video's frames, and its largest frame); everything else is the source untouched.", "",
             "| video | model | changed (mean) | changed (max) |", "|---|---|---|---|"]
    lines += [f"| {r.video} | {r.model} | {r.changed_share:.1%} | {r.changed_max:.1%} |" for r in changed.itertuples()]
    return "\n".join(lines) + "\n"


def shown_row(model: str, mode: dict) -> str:
    """The report row of what the merged videos show for `model` (infer's temporal.json `mode`)."""
    return model if mode["temporal"] == "none" else f"{model}+{mode['temporal']}"


def _pooled_share(by_way: dict) -> float | None:
    """The identity share of all described frames of both directions."""
    described = sum(way["described"] for way in by_way.values())
    share = sum(way["identity_share"] * way["described"] for way in by_way.values() if way["described"])
    return share / described if described else None


def headline_figures(evaluation: Evaluation) -> dict:
    """metrics/summary.json, what `dvc exp show` lists: per model, for the translation its merged
    videos show (stabilised when infer stabilises), over the test videos of both directions, the mean
    warping error and the identity share of all described crops, and the identity share of the
    faces cut from the merged videos (what the viewer sees). Three figures a model keep the table
    readable in a terminal; the rest is in translation.json, the CSV and the report."""
    figures = {}
    crops = evaluation.overall["crops"]
    for model, mode in evaluation.temporal.items():
        row = shown_row(model, mode)
        rows = evaluation.videos[(evaluation.videos["scored"] == "crops") & (evaluation.videos["model"] == row)]
        figures[model] = {"warping_error": float(rows["warping_error"].mean()),
                          "identity_share": _pooled_share(crops[row])}
        if model in evaluation.overall.get("merged", {}):
            figures[model]["merged_identity_share"] = _pooled_share(evaluation.overall["merged"][model])
    return figures


def write_report(evaluation: Evaluation, out_dir: str | Path, changed: pd.DataFrame | None = None) -> None:
    """metrics/summary.json (DVC metrics), translation.json, translation.csv, report.md (with `changed`,
    merge_video's changed.csv, when given) and plots/, each written atomically."""
    out_dir = Path(out_dir)
    with atomic_dir(out_dir / "plots") as tmp:
        plot(evaluation, tmp)
    with atomic_file(out_dir / "translation.csv") as tmp:
        evaluation.videos.to_csv(tmp, index=False)
    with atomic_file(out_dir / "report.md") as tmp:
        tmp.write_text(markdown(evaluation) + (changed_section(changed) if changed is not None else ""))
    with atomic_file(out_dir / "translation.json") as tmp:
        tmp.write_text(json.dumps(_json_safe(evaluation.overall), indent=2) + "\n")
    with atomic_file(out_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(_json_safe(headline_figures(evaluation)), indent=2) + "\n")
