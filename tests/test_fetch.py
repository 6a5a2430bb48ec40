"""fetch: local copies and real downloads from a loopback HTTP server (a plain file, a DASH
manifest with separate video and audio streams, an HLS playlist), checksums, one-line errors,
atomic output."""
import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import av
import imageio_ffmpeg
import pandas as pd
import pytest
import yaml
from helpers.processes import ENV, sh
from helpers.repo import REPO, copy_stages, serving

from pipeline.common.errors import FacecycleError
from pipeline.common.params import Video
from pipeline.data.fetch import COLUMNS, _DownloadBar, fetch_videos
from pipeline.store.video import probe

pytestmark = pytest.mark.integration


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_local_copy_is_byte_identical_and_recorded(tmp_path, samples):
    clip = samples / "B" / "lrwp9a.mpg"
    videos = (Video(name="w", domain="B", path=str(clip), split="test", start=0.5, end=2.0),
              Video(name="m", domain="A", path=str(samples / "A" / "bbaf2n.mpg"),
                    sha256=sha256(samples / "A" / "bbaf2n.mpg")))
    table = fetch_videos(videos, tmp_path)
    assert list(table.columns) == COLUMNS
    assert (tmp_path / "w.mpg").read_bytes() == clip.read_bytes()
    row = table.iloc[0]
    assert (row["name"], row["domain"], row["split"], row["file"], row["sha256"], row["start"], row["end"]) == \
        ("w", "B", "test", "w.mpg", sha256(clip), 0.5, 2.0)
    assert table.iloc[1]["split"] == "" and pd.isna(table.iloc[1]["start"])


def test_http_download_is_byte_identical_and_shows_a_byte_bar(tmp_path, samples, server, capfd):
    clip = samples / "A" / "sbat6n.mpg"
    table = fetch_videos((Video(name="dl", domain="A", url=f"{server}/sbat6n.mpg", sha256=sha256(clip)),), tmp_path)
    bar = capfd.readouterr().err
    assert "fetch: dl:" in bar and f"/{clip.stat().st_size / 1000:.0f}k" in bar  # the bar knows the file's size
    assert table.iloc[0]["file"] == "dl.mpg"
    assert (tmp_path / "dl.mpg").read_bytes() == clip.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dl.mpg"]  # no .part or cache files left


STREAMED = {  # how sites serve a clip in pieces: ffmpeg muxer arguments, manifest, the file fetch keeps
    # YouTube's better formats: a DASH manifest of separate video and audio streams, merged to .mkv
    "dash": (["-f", "dash", "-adaptation_sets", "id=0,streams=v id=1,streams=a"], "clip.mpd", "talk.mkv"),
    # HLS: MPEG-TS segments of both streams, which yt-dlp's fixup remuxes into .mp4
    "hls": (["-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod"], "clip.m3u8", "talk.mp4"),
}


@pytest.fixture(scope="module", params=sorted(STREAMED))
def streamed_site(request, tmp_path_factory, samples):
    """A sample clip served in pieces (made here by the bundled ffmpeg): (manifest URL, file fetch keeps)."""
    muxer, manifest, kept = STREAMED[request.param]
    site = tmp_path_factory.mktemp(request.param)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(samples / "A" / "sbat6n.mpg"),
                    "-map", "0:v", "-map", "0:a", "-c:v", "libx264", "-c:a", "aac", *muxer, str(site / manifest)],
                   check=True)
    with serving(site) as url:
        yield f"{url}/{manifest}", kept


def test_a_clip_served_in_pieces_becomes_one_file_with_the_same_bytes_every_time(tmp_path, streamed_site):
    url, kept = streamed_site
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    table = fetch_videos((Video(name="talk", domain="A", url=url),), first)
    assert table.iloc[0]["file"] == kept and sorted(p.name for p in first.iterdir()) == [kept]
    with av.open(str(first / kept)) as container:
        assert sorted(s.type for s in container.streams) == ["audio", "video"]
    info = probe(first / kept)
    assert (info.frames, info.width, info.height, info.has_audio) == (75, 360, 288, True)
    time.sleep(1.1)  # a muxer that stamps the date would now write another second
    again = fetch_videos((Video(name="talk", domain="A", url=url, sha256=table.iloc[0]["sha256"]),), second)
    assert again.iloc[0]["sha256"] == table.iloc[0]["sha256"]  # a checksum in params keeps matching


def test_download_bar_adds_up_the_streams_of_one_video():
    """yt-dlp reports a video's video and audio streams as two downloads, each counting from 0."""
    bar = _DownloadBar("talk")
    seen = []
    for stream, total in (("talk.f0.mp4", 1000), ("talk.f1.m4a", 200)):
        for done in (0, total // 2, total):
            bar.update({"status": "downloading", "filename": stream, "downloaded_bytes": done, "total_bytes": total})
            seen.append(bar.bar.n)
    assert seen == sorted(seen) and (bar.bar.n, bar.bar.total) == (1200, 1200)
    bar.close()


def test_http_404_names_video_and_url(tmp_path, server):
    url = f"{server}/no_such_clip.mpg"
    with pytest.raises(FacecycleError, match="HTTP Error 404") as err:
        fetch_videos((Video(name="gone", domain="A", url=url),), tmp_path)
    assert "video gone" in str(err.value) and url in str(err.value) and "\n" not in str(err.value)


def test_missing_local_file_names_video_and_path(tmp_path):
    with pytest.raises(FacecycleError, match=r"video lost: /nowhere/clip.mp4: file not found"):
        fetch_videos((Video(name="lost", domain="A", path="/nowhere/clip.mp4"),), tmp_path)


def test_checksum_mismatch_shows_both_digests_and_leaves_no_file(tmp_path, samples, server):
    actual = sha256(samples / "A" / "bbaf2n.mpg")
    for video in (Video(name="bad", domain="A", path=str(samples / "A" / "bbaf2n.mpg"), sha256="0" * 64),
                  Video(name="bad", domain="A", url=f"{server}/bbaf2n.mpg", sha256="0" * 64)):
        with pytest.raises(FacecycleError, match=f"sha256 mismatch: expected {'0' * 64}, got {actual}"):
            fetch_videos((video,), tmp_path)
        assert list(tmp_path.iterdir()) == []


def run_stage(tmp_path: Path, videos: list[dict]) -> subprocess.CompletedProcess:
    listed = tmp_path / "videos.yaml"
    listed.write_text(yaml.safe_dump({"videos": videos}))
    return subprocess.run([sys.executable, str(REPO / "stages" / "fetch.py"), "--out", str(tmp_path / "raw"),
                           "--videos", str(listed)], capture_output=True, text=True, cwd=tmp_path)


def test_stage_writes_videos_csv(tmp_path, samples, server):
    result = run_stage(tmp_path, [
        {"name": "a", "domain": "A", "path": str(samples / "A" / "bbaf2n.mpg"), "split": "train"},
        {"name": "b", "domain": "B", "url": f"{server}/srao1a.mpg", "start": 1, "end": 2.5},
    ])
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "raw" / "videos.csv").read_text().splitlines() == [
        "name,domain,split,file,sha256,start,end",
        f"a,A,train,a.mpg,{sha256(samples / 'A' / 'bbaf2n.mpg')},,",
        f"b,B,,b.mpg,{sha256(samples / 'A' / 'srao1a.mpg')},1.0,2.5",
    ]
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["a.mpg", "b.mpg", "videos.csv"]


def test_stage_failure_is_one_line_and_leaves_no_output(tmp_path, samples, server):
    result = run_stage(tmp_path, [
        {"name": "a", "domain": "A", "path": str(samples / "A" / "bbaf2n.mpg")},
        {"name": "b", "domain": "A", "url": f"{server}/missing.mpg"},
    ])
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("fetch: error: video b: ")
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["videos.yaml"]  # no raw/, no temp folder


def test_dvc_reruns_fetch_when_a_local_video_in_videos_changes(tmp_path, samples):
    """videos/ is a dep of fetch and each video in it a DVC-tracked file (`dvc add`): replacing one
    is a change `dvc repro` acts on, before and after it is added again. One not added is refused:
    `dvc push` would not share it."""
    copy_stages(tmp_path, "fetch")
    shutil.copytree(samples, tmp_path / "data" / "samples")
    shutil.copy(samples / "A" / "bbaf2n.mpg", tmp_path / "videos" / "me.mpg")
    (tmp_path / "videos.yaml").write_text(
        yaml.safe_dump({"videos": [{"name": "me", "domain": "A", "path": "videos/me.mpg"}]}))
    sh(tmp_path, "git", "init", "-q")
    sh(tmp_path, "dvc", "init", "-q")
    untracked = subprocess.run(["dvc", "repro"], cwd=tmp_path, env=ENV, capture_output=True, text=True)
    assert untracked.returncode != 0 and ("fetch: error: video me: videos/me.mpg: not tracked by DVC, so `dvc push` "
                                          "would not share it; run `dvc add videos/me.mpg`") in untracked.stderr
    sh(tmp_path, "dvc", "add", "videos/me.mpg")
    assert "Running stage 'fetch'" in sh(tmp_path, "dvc", "repro").stdout
    assert "Data and pipelines are up to date." in sh(tmp_path, "dvc", "repro").stdout
    shutil.copy(samples / "A" / "sbat6n.mpg", tmp_path / "videos" / "me.mpg")
    assert "modified:           videos" in sh(tmp_path, "dvc", "status").stdout
    sh(tmp_path, "dvc", "add", "videos/me.mpg")
    assert "Running stage 'fetch'" in sh(tmp_path, "dvc", "repro").stdout
    assert (tmp_path / "data" / "raw" / "me.mpg").read_bytes() == (samples / "A" / "sbat6n.mpg").read_bytes()
