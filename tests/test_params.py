"""Params validation that the stages rely on before any work: one clear line naming `group.key`."""
import pytest

from pipeline.errors import FacecycleError
from pipeline.params import DataParams, MergeParams, Video


def data(*names: str) -> DataParams:
    return DataParams(videos=tuple(Video(name=name, domain="A", path=f"{name}.mp4") for name in names))


@pytest.mark.parametrize("name", ["clip_01", "Take-2", "a"])
def test_video_names_of_letters_digits_underscores_and_dashes_pass(name):
    data(name).validate()


@pytest.mark.parametrize("name, why", [
    ("", "use letters, digits"), (".", "use letters, digits"), ("..", "use letters, digits"),
    ("a/b", "use letters, digits"), ("two words", "use letters, digits"), ("-x", "use letters, digits"),
    ("videos", "taken by the stages' own files"),  # data/frames/videos.csv beside <name>.csv
    ("interview_rec", "taken by the stages' own files"),  # infer writes <video>_rec.npy beside <video>.npy
])
def test_video_names_that_would_collide_or_escape_their_folder_fail(name, why):
    with pytest.raises(FacecycleError, match=r"params: data\.videos\[0\]\.name: .*" + why):
        data(name).validate()


def test_names_differing_only_in_case_are_duplicates():
    """One file per video, also on file systems where case does not count (macOS, Windows)."""
    with pytest.raises(FacecycleError, match=r"data\.videos: duplicate names \['Clip', 'clip'\]"):
        data("clip", "Clip").validate()


@pytest.mark.parametrize("video, message", [
    (Video(name="v", domain="A"), "give exactly one of path or url"),
    (Video(name="v", domain="A", path="v.mp4", url="http://x/v.mp4"), "give exactly one of path or url"),
    (Video(name="v", domain="C", path="v.mp4"), "domain: must be A or B"),
    (Video(name="v", domain="A", path="v.mp4", split="val"), "split: must be train or test"),
    (Video(name="v", domain="A", path="v.mp4", sha256="abc"), "sha256: must be 64 hex digits"),
    (Video(name="v", domain="A", path="v.mp4", start=2.0, end=1.0), "end: must be after start"),
])
def test_bad_video_entries_name_the_entry_and_the_key(video, message):
    with pytest.raises(FacecycleError, match=r"data\.videos\[0\]"):
        DataParams(videos=(video,)).validate()
    with pytest.raises(FacecycleError, match=message):
        DataParams(videos=(video,)).validate()


@pytest.mark.parametrize("setting, message", [
    (dict(mask="hull"), r"merge\.mask: must be one of \['face', 'square'\], got 'hull'"),
    (dict(blend="seamless"), r"merge\.blend: must be one of \['alpha', 'poisson'\], got 'seamless'"),
    (dict(mask_erode=-0.1), r"merge\.mask_erode: must be in \[0, 0\.3\]"),
    (dict(mask_blur=0.8), r"merge\.mask_blur: must be in \[0, 0\.5\]"),
])
def test_bad_merge_settings_name_the_key(setting, message):
    with pytest.raises(FacecycleError, match=message):
        MergeParams(**setting).validate()
