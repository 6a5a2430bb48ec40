"""Bring the videos listed in videos.yaml into one folder, byte for byte, with their checksums.

A local `path` is copied; a `url` is downloaded with yt-dlp's Python API (any site it knows;
plain http(s) links to a file go through its generic extractor). Sites such as YouTube serve their
best video and audio as separate streams (above 360p); yt-dlp merges them into one .mkv with the
ffmpeg binary that imageio-ffmpeg ships, as a remux (no re-encoding) whose bytes are the same on
every download, so a given sha256 keeps matching; HLS segments are remuxed into one .mp4 alike.
The sha256 of every file is recorded, and checked when the params give one, so a changed or
corrupted source is caught here rather than as a strange model later.

Own videos go in `videos/`, each tracked by DVC (`dvc add videos/<file>`, docs/team.md): a file
there without its `.dvc` file is refused, since `dvc push` would not share it and a teammate's
`dvc repro` would fail on it.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import imageio_ffmpeg
import pandas as pd
import yt_dlp
from tqdm import tqdm

from pipeline.common.errors import FacecycleError
from pipeline.common.params import Video
from pipeline.store.checksum import file_sha256

COLUMNS = ["name", "domain", "split", "file", "sha256", "start", "end"]
OWN_VIDEOS = "videos"  # the folder of own videos, a dep of fetch


def fetch_videos(videos: tuple[Video, ...], out_dir: Path) -> pd.DataFrame:
    """Copy or download every video into `out_dir` as `<name><ext>`; return the videos.csv table."""
    rows = []
    for video in tqdm(videos, desc="fetch", unit="video"):
        source = video.path or video.url
        target = copy_local(video, out_dir) if video.path else download(video, out_dir)
        digest = file_sha256(target)
        if video.sha256 and digest != video.sha256.lower():
            target.unlink()
            raise FacecycleError(f"video {video.name}: {source}: sha256 mismatch: "
                                 f"expected {video.sha256.lower()}, got {digest}")
        rows.append({"name": video.name, "domain": video.domain, "split": video.split or "",
                     "file": target.name, "sha256": digest, "start": video.start, "end": video.end})
    return pd.DataFrame(rows, columns=COLUMNS)


def copy_local(video: Video, out_dir: Path) -> Path:
    source = Path(video.path)
    if not source.is_file():
        raise FacecycleError(f"video {video.name}: {source}: file not found")
    if source.parts[0] == OWN_VIDEOS and not source.with_name(f"{source.name}.dvc").is_file():
        raise FacecycleError(f"video {video.name}: {source}: not tracked by DVC, so `dvc push` would not share it; "
                             f"run `dvc add {source}` (docs/team.md)")
    target = out_dir / f"{video.name}{source.suffix}"
    shutil.copyfile(source, target)
    return target


def download(video: Video, out_dir: Path) -> Path:
    options = {
        "outtmpl": str(out_dir / f"{video.name}.%(ext)s"),
        "format": "bv*+ba/b",  # the best video and the best audio, merged; else the best single file
        "merge_output_format": "mkv",  # holds any pair of codecs (YouTube's VP9 or AV1 with Opus too)
        "ffmpeg_location": imageio_ffmpeg.get_ffmpeg_exe(),
        # every ffmpeg run (the merge, and yt-dlp's fixups such as HLS segments remuxed into .mp4)
        # writes no date or random id into the file
        "postprocessor_args": {"ffmpeg": ["-fflags", "+bitexact"]},
        "noplaylist": True,
        "cachedir": False,
        "noprogress": True,  # yt-dlp's own progress line; ours is a tqdm bar like every other stage's
        "logger": _Log(video.name),
    }
    bar = _DownloadBar(video.name)
    options["progress_hooks"] = [bar.update]
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(video.url, download=True)
    except yt_dlp.utils.DownloadError as err:
        reason = re.sub(r"^ERROR: | \(caused by .*$", "", str(err).splitlines()[0])
        raise FacecycleError(f"video {video.name}: {video.url}: download failed: {reason}") from None
    finally:
        bar.close()
    return Path(info["requested_downloads"][0]["filepath"])


class _DownloadBar:
    """Bytes downloaded of one video (yt-dlp progress hook). Its streams (separate video and audio)
    come as downloads of their own: the bar adds them up, totals as far as the server says them."""

    def __init__(self, name: str):
        self.name = name
        self.bar: tqdm | None = None
        self.done: dict[str, int] = {}
        self.totals: dict[str, int] = {}

    def update(self, status: dict) -> None:
        if "downloaded_bytes" not in status:
            return
        stream = status.get("filename", "")
        self.done[stream] = status["downloaded_bytes"]
        self.totals[stream] = status.get("total_bytes") or status.get("total_bytes_estimate") or 0
        total = sum(self.totals.values()) or None
        if self.bar is None:
            self.bar = tqdm(total=total, desc=f"fetch: {self.name}", unit="B", unit_scale=True, leave=False)
        elif total != self.bar.total:  # the next stream's size is known now
            self.bar.total = total
            self.bar.refresh()
        self.bar.update(sum(self.done.values()) - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Log:
    """yt-dlp logger: keep its warnings visible above the progress bar, drop its chatter (errors are raised)."""

    def __init__(self, name: str):
        self.name = name

    def debug(self, msg: str) -> None:
        pass

    info = error = debug

    def warning(self, msg: str) -> None:
        if "ffprobe not found" in msg:  # imageio-ffmpeg ships no ffprobe; without it yt-dlp's fixups
            return                      # assume the fix is needed and remux anyway (tests/test_fetch.py: HLS)
        tqdm.write(f"fetch: {self.name}: {msg}")
