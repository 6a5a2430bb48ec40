"""Decode videos to RGB frames (decord, strictly sequential) and encode frames back to H.264 .mp4 (PyAV).

Why sequential: decord's random access on old AVI (XviD) files returns wrong frames (asked for
frame 147 of Megamind.avi, got 49), and its `skip_frames` is off by one there too. Reading every
frame in order with `VideoReader.next()` is exact, so that is the only way frames are read here.

Frame counts and integrity come from PyAV's demuxer (headers plus one pass over the packets, no
decoding): an MPEG-PS .mpg declares no frame count, and a truncated file shows up as a corrupt
last packet or fewer packets than the header declares.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import av
import numpy as np
from decord import VideoReader, cpu
from decord._ffi.base import DECORDError

from pipeline.errors import FacecycleError

_EPS = 1e-9  # tolerance for frame times that fall exactly on a boundary


@dataclass(frozen=True)
class VideoInfo:
    """What the stages need to know about a video: its frame grid and whether it has sound."""

    fps: float
    frames: int
    width: int
    height: int
    duration: float  # frames / fps, seconds
    has_audio: bool


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read a video's frame rate, size and exact frame count; a missing, unreadable or truncated file is a FacecycleError."""
    path = Path(path)
    if not path.is_file():
        raise FacecycleError(f"{path}: video file not found")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise FacecycleError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            if not rate:
                raise FacecycleError(f"{path}: frame rate unknown")
            declared = stream.frames
            frames = 0
            for packet in container.demux(stream):
                if packet.size == 0:  # the demuxer's end-of-stream marker
                    continue
                if packet.is_corrupt:
                    raise FacecycleError(f"{path}: truncated or corrupt video (bad packet after {frames} frames)")
                frames += 1
            width, height = stream.codec_context.width, stream.codec_context.height
            has_audio = bool(container.streams.audio)
    except av.FFmpegError as err:
        raise FacecycleError(f"{path}: not a readable video ({err.strerror})") from None
    if frames == 0:
        raise FacecycleError(f"{path}: video has no frames")
    if declared and frames < declared:
        raise FacecycleError(f"{path}: truncated video ({frames} of {declared} declared frames present)")
    return VideoInfo(fps=float(rate), frames=frames, width=width, height=height,
                     duration=frames / float(rate), has_audio=has_audio)


def select_frames(info: VideoInfo, fps: Optional[float] = None,
                  start: Optional[float] = None, end: Optional[float] = None) -> list[int]:
    """Source frame indices of the output frames, in order.

    Without `fps`, every source frame whose time (index / source fps) lies in [start, end).
    With `fps`, output frame k has time start + k / fps (< end) and takes the source frame
    nearest to that time, so a frame may repeat when `fps` exceeds the source rate.
    """
    first = start or 0.0
    stop = min(end if end is not None else math.inf, info.duration)
    if fps is None:
        lo = math.ceil(first * info.fps - _EPS)
        hi = min(info.frames, math.ceil(stop * info.fps - _EPS))
        return list(range(lo, hi))
    indices = []
    k = 0
    while first + k / fps < stop - _EPS:
        indices.append(min(info.frames - 1, math.floor((first + k / fps) * info.fps + 0.5 + _EPS)))
        k += 1
    return indices


def iter_frames(path: str | os.PathLike, fps: Optional[float] = None, start: Optional[float] = None,
                end: Optional[float] = None) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield `(source_frame, time, rgb)` for the frames `select_frames` picks, decoding in order.

    `time` is the source frame's time in the raw video (source_frame / source fps); `rgb` is
    uint8 HxWx3 (the same array is yielded again when a frame repeats: copy before changing it).
    """
    path = Path(path)
    info = probe(path)
    wanted = select_frames(info, fps, start, end)
    if not wanted:
        raise FacecycleError(f"{path}: trim [{start}, {end}) s selects no frames (video lasts {info.duration:.2f} s)")
    try:
        reader = VideoReader(str(path), ctx=cpu(0))
        position, rgb = -1, None
        for source in wanted:
            while position < source:  # decode every frame in order, keep the wanted ones
                rgb = reader.next().asnumpy()
                position += 1
            yield source, source / info.fps, rgb
    except StopIteration:
        raise FacecycleError(f"{path}: decoder stopped after {position + 1} of {info.frames} frames (damaged video)") from None
    except DECORDError as err:
        raise FacecycleError(f"{path}: cannot decode video ({str(err).splitlines()[0]})") from None
