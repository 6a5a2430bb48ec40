"""The results page of a real run: real GRID clips cropped by dlib, two tiny models trained a few
steps, then infer, merge_video, metrics and results_page under `dvc repro` in a fresh git + DVC
repository; the page is then opened in headless Chromium (Debian's `chromium`) from a file:// URL."""
import html
import math
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from helpers.browser import CHROMIUM, loaded, screenshot
from helpers.processes import ENV, commit, sh
from helpers.repo import GROUPS, REPO, copy_stages, over_shipped, train_into

from pipeline.models import MODELS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LOAD_SIZE = 40


class Links(HTMLParser):
    """Every src and href of a page, the tags seen and the text of each element."""

    def __init__(self, text: str):
        super().__init__()
        self.src, self.href, self.tags, self.text = [], [], [], []
        self.feed(text)

    def handle_data(self, data):
        if data.strip():
            self.text.append(data.strip())

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            {"src": self.src, "href": self.href}.get(name, []).append(value)


@pytest.fixture(scope="module")
def repo(tmp_path_factory, samples):
    """A run of the pipeline from crop_faces on, on real clips, as `dvc repro results_page` leaves it
    (the two tiny models trained in this process between crop_faces and infer)."""
    from helpers.real_frames import write_frames

    repo = tmp_path_factory.mktemp("results_page")
    clips = [{"name": "sbat6n", "domain": "A", "split": "test", "path": samples / "A" / "sbat6n.mpg", "limit": 20},
             {"name": "lrwp9a", "domain": "B", "split": "test", "path": samples / "B" / "lrwp9a.mpg", "limit": 20},
             {"name": "bbaf2n", "domain": "A", "split": "train", "path": samples / "A" / "bbaf2n.mpg", "limit": 8},
             {"name": "brbk7n", "domain": "B", "split": "train", "path": samples / "B" / "brbk7n.mpg", "limit": 8}]
    write_frames(repo / "data" / "frames", clips)  # extract_frames' output
    (repo / "data" / "raw").mkdir()
    for clip in clips:  # fetch's output: the source files (merge_video takes their audio)
        shutil.copy(clip["path"], repo / "data" / "raw")
    params = over_shipped({**GROUPS, "data": {"load_size": LOAD_SIZE},
                           "metrics": {"identity_every": 4, "centroid_frames": 8}})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False) + "# escaped: <b>bold</b> & co\n")
    copy_stages(repo, "crop_faces", "infer", "merge_video", "metrics", "results_page")
    sh(repo, "git", "init", "-q")
    sh(repo, "dvc", "init", "-q")
    sh(repo, "dvc", "config", "core.analytics", "false")
    sh(repo, "dvc", "repro", "crop_faces")
    for model in MODELS:
        train_into(model, repo / "params.yaml", repo / "data" / "faces", repo / "training" / model)
        shutil.move(repo / "training" / model / "models", repo / "models" / model)
        shutil.move(repo / "training" / model / "logs", repo / "logs" / model)
    shutil.rmtree(repo / "training")
    sh(repo, "dvc", "repro", "results_page")
    commit(repo, "run")
    return repo


def run_stage(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "stages" / "results_page.py"), *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=120)


def local_files(page: Path) -> tuple[Links, set[Path]]:
    """The page's links, and the files they point to (all must be local and exist)."""
    links = Links(page.read_text(encoding="utf-8"))
    files = set()
    for url in links.src + [h for h in links.href if not h.startswith("#")]:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{url}: the page must work offline, from local files only"
        target = (page.parent / unquote(parts.path)).resolve()
        assert target.is_file(), f"{url}: no such file beside {page}"
        files.add(target)
    return links, files


def test_page_shows_every_output_of_the_run_by_relative_links(repo):
    links, files = local_files(repo / "results" / "index.html")
    assert "script" not in links.tags
    videos = sorted((repo / "results" / "compare").glob("*.mp4"))
    assert [v.stem for v in videos] == ["lrwp9a", "sbat6n"]
    assert [(repo / "results" / src).resolve() for src in links.src if src.endswith(".mp4")] == videos
    sheets = sorted((repo / "results" / "sheets").glob("*.png"))
    plots = sorted((repo / "metrics" / "plots").glob("*.png"))
    training = {m: sorted(p.name for p in (repo / "logs" / m / "plots" / "images").glob("*.png")) for m in MODELS}
    assert len(sheets) == 2 and plots and training == {m: ["losses.png", "samples.png"] for m in MODELS}
    assert {p.resolve() for p in [*sheets, *plots, *repo.glob("logs/*/plots/images/*.png")]} <= files
    assert {(repo / "results" / m / v.name).resolve() for m in MODELS for v in videos} <= files


def test_page_holds_the_figures_definitions_and_params_of_the_run(repo):
    import pandas as pd

    from pipeline.evaluate.definitions import FID_NOTE, METRICS, SCORED, SCORED_TITLES, format_number

    page = (repo / "results" / "index.html").read_text(encoding="utf-8")
    table = pd.read_csv(repo / "metrics" / "translation.csv")
    for column in table.columns:  # every column the metrics stage wrote, under the report's name
        assert f"<th>{METRICS[column].header if column in METRICS else column}</th>" in page
    for value in table["warping_error"]:
        assert f">{format_number(value)}</td>" in page
    text = " ".join(Links(page).text)
    for header, meaning, *_ in [*METRICS.values(), ("", FID_NOTE)]:  # as the reader sees them: markdown marks gone
        assert f"{header} {meaning.replace('`', '').replace('*', '')}".strip() in text
    for scored in SCORED:  # the crops' figures and the merged videos' figures, each under its own title
        assert f"<h3>Overall: {html.escape(SCORED_TITLES[scored])}</h3>" in page
    assert set(table["scored"]) == set(SCORED)
    crops = yaml.safe_load((repo / "metrics" / "crop.json").read_text())
    assert f"<td>A.test.faces</td><td class=\"n\">{crops['A']['test']['faces']}</td>" in page
    assert "# escaped: &lt;b&gt;bold&lt;/b&gt; &amp; co" in page and "<b>" not in page
    assert "n_blocks: 1" in page  # the tiny training params, from params.yaml as it is


def test_a_rerun_writes_the_same_bytes_and_the_links_hold_from_any_folder(repo, tmp_path):
    assert "up to date" in sh(repo, "dvc", "status", "results_page").stdout
    page = repo / "results" / "index.html"
    first = page.read_bytes()
    rerun = run_stage(repo)
    assert rerun.returncode == 0, rerun.stderr
    assert page.read_bytes() == first
    elsewhere = tmp_path / "elsewhere" / "index.html"
    assert run_stage(repo, "--out", str(elsewhere)).returncode == 0
    assert elsewhere.read_bytes() != first and local_files(elsewhere)[1] == local_files(page)[1]


@pytest.mark.parametrize("remove, message", [
    ("metrics/crop.json", "metrics/crop.json: not found (the crop_faces stage writes it)"),
    ("logs/recyclegan/plots/images", "logs/recyclegan/plots/images: not found (the train_recyclegan stage writes it)"),
], ids=["crop summary", "training images"])
def test_a_missing_input_is_one_line_and_no_page(repo, tmp_path, remove, message):
    work = tmp_path / "work"
    shutil.copytree(repo, work, ignore=shutil.ignore_patterns(".git", ".dvc", "index.html"))
    target = work / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    done = run_stage(work)
    assert done.returncode == 1 and done.stderr == f"results_page: error: {message}\n"
    assert not (work / "results" / "index.html").exists()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not found (Debian: apt-get install chromium; .ci/run installs it)")
def test_chromium_loads_every_image_and_video_of_the_page_from_a_file_url(repo, tmp_path):
    from pipeline.store.video import probe

    page = repo / "results" / "index.html"
    links, _ = local_files(page)
    seen = loaded(page)
    assert [i["src"] for i in seen["images"]] == [s for s in links.src if s.endswith(".png")]
    for image in seen["images"]:
        assert image["complete"] and image["width"] > 0, image
    assert [v["src"] for v in seen["videos"]] == ["compare/lrwp9a.mp4", "compare/sbat6n.mp4"]
    for video in seen["videos"]:  # H.264 + the GRID clips' MPEG audio, as merge_video writes them
        assert video["error"] is None and video["readyState"] >= 1 and video["width"] > 0, video
        assert math.isfinite(video["duration"] or math.nan)
        assert video["duration"] == pytest.approx(probe(page.parent / video["src"]).duration, abs=0.05)
    shot = screenshot(page, tmp_path / "results_page.png")
    print(f"screenshot: {shot}")
    from PIL import Image

    with Image.open(shot) as png:
        assert png.size == (1280, 2000) and len(png.convert("RGB").getcolors(1 << 24)) > 1000  # not a blank page
