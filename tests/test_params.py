"""Validation that the stages rely on before any work: one clear line naming the file, the entry
and the key (`videos.yaml: videos[0].name: ...`, `params: group.key: ...`)."""
from pathlib import Path

import pytest
import yaml
from helpers.repo import shipped_params

from pipeline.common.errors import FacecycleError
from pipeline.common.params import load_videos


def videos_file(folder: Path, *entries: dict) -> Path:
    path = folder / "videos.yaml"
    path.write_text(yaml.safe_dump({"videos": list(entries)}))
    return path


def named(folder: Path, *names: str) -> Path:
    return videos_file(folder, *({"name": name, "domain": "A", "path": f"{name}.mp4"} for name in names))


@pytest.mark.parametrize("name", ["clip_01", "Take-2", "a"])
def test_video_names_of_letters_digits_underscores_and_dashes_pass(name, tmp_path):
    assert [v.name for v in load_videos(named(tmp_path, name))] == [name]


@pytest.mark.parametrize("name, why", [
    ("", "use letters, digits"), (".", "use letters, digits"), ("..", "use letters, digits"),
    ("a/b", "use letters, digits"), ("two words", "use letters, digits"), ("-x", "use letters, digits"),
    ("videos", "taken by the stages' own files"),  # data/frames/videos.csv beside <name>.csv
    ("interview_rec", "taken by the stages' own files"),  # infer writes <video>_rec.npy beside <video>.npy
])
def test_video_names_that_would_collide_or_escape_their_folder_fail(name, why, tmp_path):
    with pytest.raises(FacecycleError, match=r"videos.yaml: videos\[0\]\.name: .*" + why):
        load_videos(named(tmp_path, name))


def test_names_differing_only_in_case_are_duplicates(tmp_path):
    """One file per video, also on file systems where case does not count (macOS, Windows)."""
    with pytest.raises(FacecycleError, match=r"videos.yaml: videos: duplicate names \['Clip', 'clip'\]"):
        load_videos(named(tmp_path, "clip", "Clip"))


@pytest.mark.parametrize("video, message", [
    (dict(name="v", domain="A"), r"videos\[1\]: give exactly one of path or url"),
    (dict(name="v", domain="A", path="v.mp4", url="http://x/v.mp4"), r"videos\[1\]: give exactly one of path or url"),
    (dict(name="v", domain="C", path="v.mp4"), r"videos\[1\]\.domain: must be A or B, got 'C'"),
    (dict(name="v", domain="A", path="v.mp4", split="val"), r"videos\[1\]\.split: must be train or test"),
    (dict(name="v", domain="A", path="v.mp4", sha256="abc"), r"videos\[1\]\.sha256: must be 64 hex digits"),
    (dict(name="v", domain="A", path="v.mp4", start=2.0, end=1.0), r"videos\[1\]\.end: must be after start"),
    (dict(domain="A", path="v.mp4"), r"videos\[1\]: missing key\(s\) \['name'\]"),
    (dict(name="v", domain="A", path="v.mp4", end="soon"), r"videos\[1\]\.end: must be a number, got 'soon'"),
])
def test_bad_video_entries_name_the_file_the_entry_and_the_key(video, message, tmp_path):
    good = dict(name="ok", domain="B", path="ok.mp4")
    with pytest.raises(FacecycleError, match=r"/videos.yaml: " + message + "[^\\n]*$"):
        load_videos(videos_file(tmp_path, good, video))


def test_an_empty_or_missing_list_is_one_line(tmp_path):
    with pytest.raises(FacecycleError, match=r"videos.yaml: videos: no videos listed"):
        load_videos(videos_file(tmp_path))
    (tmp_path / "videos.yaml").write_text("data: {}\n")
    with pytest.raises(FacecycleError, match=r"videos.yaml: videos: missing"):
        load_videos(tmp_path / "videos.yaml")
    with pytest.raises(FacecycleError, match=r"other.yaml: file not found"):
        load_videos(tmp_path / "other.yaml")


@pytest.mark.parametrize("setting, message", [
    (dict(mask="hull"), r"merge\.mask: must be one of \['head', 'face', 'square'\], got 'hull'"),
    (dict(head_change=0), r"merge\.head_change: must be in \(0, 0\.5\]"),
    (dict(head_time_sigma=-1), r"merge\.head_time_sigma: must be in \[0, 10\]"),
    (dict(blend="seamless"), r"merge\.blend: must be one of \['alpha', 'poisson'\], got 'seamless'"),
    (dict(mask_erode=-0.1), r"merge\.mask_erode: must be in \[0, 0\.3\]"),
    (dict(mask_blur=0.8), r"merge\.mask_blur: must be in \[0, 0\.5\]"),
    (dict(preset="fastest"), r"merge\.preset: must be one of \['ultrafast', .*'veryslow'\], got 'fastest'"),
])
def test_bad_merge_settings_name_the_key(setting, message):
    with pytest.raises(FacecycleError, match=message):
        shipped_params("merge", **setting).validate()
