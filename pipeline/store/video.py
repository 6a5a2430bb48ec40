"""Decode videos to RGB frames and encode frames back to H.264 .mp4, both with PyAV (FFmpeg).

Frames are decoded strictly in order, one decoded frame per frame taken, so memory stays flat
however long the video is, and every frame is exact (seeking in old AVI files lands on wrong
frames). A display rotation (phones film portrait as landscape plus a rotation) is applied, so
frames come out upright. docs/data.md says why PyAV rather than decord.

Frame counts and integrity come from PyAV's demuxer (headers plus one pass over the packets, no
decoding): an MPEG-PS .mpg declares no frame count, and a truncated file shows up as a corrupt
packet or as fewer frames than the header declares (.mp4, .avi). An MPEG-PS file cut between two
packets has no such trace and reads as a shorter video: the sha256 that fetch checks catches that.
"""
from __future__ import annotations

import math
import os
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional

import av
import numpy as np

from pipeline.common.errors import FacecycleError
from pipeline.common.files import atomic_file

_EPS = 1e-9  # tolerance for frame times that fall exactly on a boundary
X264_OPTIONS = {"threads": "1", "x264-params": "mbtree=0"}  # the same bytes from the same frames (VideoWriter)


@dataclass(frozen=True)
class VideoInfo:
    """What the stages need to know about a video: its frame grid and whether it has sound."""

    fps: float
    frames: int
    width: int   # of the upright frames: a phone video stored landscape with a 90-degree rotation is portrait
    height: int
    duration: float  # frames / fps, seconds
    has_audio: bool


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read a video's frame rate, frame size and exact frame count; a missing, unreadable or
    truncated file is a FacecycleError. The size is that of the upright frames (`iter_frames`), so
    a display rotation of 90 degrees swaps it against the stream's coded size."""
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
            for packet in container.demux():  # all streams: a cut inside any packet marks it corrupt
                if packet.size == 0:  # a demuxer's end-of-stream marker
                    continue
                if packet.is_corrupt:
                    raise FacecycleError(f"{path}: truncated or corrupt video (bad packet after {frames} frames)")
                frames += packet.stream is stream
            has_audio = bool(container.streams.audio)
    except av.FFmpegError as err:
        raise FacecycleError(f"{path}: not a readable video ({err.strerror})") from None
    if frames == 0:
        raise FacecycleError(f"{path}: video has no frames")
    if declared and frames < declared:
        raise FacecycleError(f"{path}: truncated video ({frames} of {declared} declared frames present)")
    height, width = next(_decode(path, frames))[1].shape[:2]
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


def wanted_frames(path: Path, info: VideoInfo, fps: Optional[float], start: Optional[float],
                  end: Optional[float]) -> list[int]:
    """`select_frames`, failing with the video's length when the trim selects nothing."""
    wanted = select_frames(info, fps, start, end)
    if not wanted:
        raise FacecycleError(f"{path}: trim from {start or 0} s to {end or 'the end'} selects no frames "
                             f"(video lasts {info.duration:.2f} s)")
    return wanted


def iter_frames(path: str | os.PathLike, fps: Optional[float] = None, start: Optional[float] = None,
                end: Optional[float] = None, info: Optional[VideoInfo] = None) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield `(source_frame, time, rgb)` for the frames `select_frames` picks, decoding in order.

    `time` is the source frame's time in the raw video (source_frame / source fps); `rgb` is
    uint8 HxWx3 (the same array is yielded again when a frame repeats: copy before changing it).
    `info`: the video's `probe`, when the caller has it (probing reads the whole file).
    """
    path = Path(path)
    info = info or probe(path)
    wanted = wanted_frames(path, info, fps, start, end)
    decoded = _decode(path, info.frames)
    position, rgb = -1, None
    for source in wanted:
        while position < source:  # decode every frame in order, keep the wanted ones
            position, rgb = next(decoded)
        yield source, source / info.fps, rgb


def _decode(path: Path, frames: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield `(index, rgb)` for every frame of the first video stream, upright, in order;
    a decoding error, or fewer than `frames` frames, is a FacecycleError."""
    index = -1
    try:
        with av.open(str(path)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                rgb = frame.to_ndarray(format="rgb24")
                turns = (frame.rotation // 90) % 4
                yield index, np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb
    except av.FFmpegError as err:
        raise FacecycleError(f"{path}: cannot decode video ({err.strerror})") from None
    raise FacecycleError(f"{path}: decoder stopped after {index + 1} of {frames} frames (damaged video)")


class VideoWriter:
    """Encode RGB frames to an H.264 .mp4 (libx264, yuv420p), written atomically.

    `with VideoWriter(path, fps, width, height) as out: out.write(rgb)`. The file appears at
    `path` only when the block ends without error. yuv420p needs even sizes: an odd width or
    height is padded by repeating the last column or row. With `audio_from`, the audio of that
    video from `audio_start` to `audio_end` seconds (times of its video track; default: as long
    as the frames written) is copied without re-encoding, cut at whole audio packets (~20-30 ms);
    a codec that .mp4 cannot hold (e.g. pcm_mulaw, wmav2) is re-encoded to AAC instead. A source
    without audio gives a silent video.

    The same frames give the same bytes: libx264 runs one thread per encoder, without its
    macroblock-tree rate control (`mbtree=0`: with it, identical frames gave other packets from run
    to run once torch was imported or other threads were busy in the process), and the container is
    written bitexact (no library version string, no creation time). docs/team.md has the measurements.
    """

    def __init__(self, path: str | os.PathLike, fps: float, width: int, height: int,
                 audio_from: Optional[str | os.PathLike] = None, audio_start: float = 0.0,
                 audio_end: Optional[float] = None, crf: int = 18, preset: str = "medium"):
        self.path = Path(path)
        self.rate = Fraction(fps).limit_denominator(1001)  # 23.976 -> 2997/125, 29.97... -> 30000/1001
        self.width, self.height = width, height
        self.audio_from, self.audio_start, self.audio_end = audio_from, audio_start, audio_end
        self.crf, self.preset = crf, preset
        self.frames = 0

    def __enter__(self) -> "VideoWriter":
        with ExitStack() as stack:  # unwound (temp file removed) if setting up fails
            tmp = stack.enter_context(atomic_file(self.path))
            self._out = stack.enter_context(av.open(str(tmp), "w", format="mp4",
                                                    options={"movflags": "+faststart", "fflags": "+bitexact"}))
            options = X264_OPTIONS | {"crf": str(self.crf), "preset": self.preset}
            self._video = self._out.add_stream("libx264", rate=self.rate, options=options)
            self._video.width, self._video.height = self.width + self.width % 2, self.height + self.height % 2
            self._video.pix_fmt = "yuv420p"
            self._audio = None
            if self.audio_from is not None:
                self._audio = _AudioTrack.open(self.audio_from, self._out, self.audio_start, self.audio_end)
                if self._audio is not None:
                    stack.callback(self._audio.close)
            self._stack = stack.pop_all()
        return self

    def write(self, rgb: np.ndarray) -> None:
        """Append one uint8 HxWx3 RGB frame (H, W as given to the constructor)."""
        if rgb.dtype != np.uint8 or rgb.shape != (self.height, self.width, 3):
            raise ValueError(f"{self.path}: expected uint8 frame {(self.height, self.width, 3)}, "
                             f"got {rgb.dtype} {rgb.shape}")
        if self.width % 2 or self.height % 2:
            rgb = np.pad(rgb, ((0, self.height % 2), (0, self.width % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts, frame.time_base = self.frames, 1 / self.rate
        self._out.mux(self._video.encode(frame))
        self.frames += 1
        if self._audio is not None:  # interleave: audio up to the end of this frame
            self._audio.mux_until(float(self.frames / self.rate))

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            return self._stack.__exit__(exc_type, exc, tb)
        with self._stack:
            self._out.mux(self._video.encode(None))
            if self._audio is not None:
                self._audio.finish(float(self.frames / self.rate))
        return False


class _AudioTrack:
    """The audio of a source video, cut to [start, end) of its video timeline, muxed into an output container."""

    def __init__(self, source: av.container.InputContainer, out: av.container.OutputContainer,
                 start: float, end: Optional[float]):
        self.source, self.out = source, out
        self.input = source.streams.audio[0]
        video = source.streams.video[0] if source.streams.video else None
        origin = video.start_time * video.time_base if video is not None and video.start_time is not None else 0
        self.first = float(origin) + start  # source stream time of the output's zero
        self.last = math.inf if end is None else float(origin) + end
        try:
            self.output = out.add_stream_from_template(self.input)
            self.encoder = None
        except ValueError:  # PyAV's answer when .mp4 cannot hold the codec
            self.output = out.add_stream("aac", rate=self.input.rate, layout=self.input.layout.name)
            self.encoder = av.AudioResampler(format=self.output.format.name, layout=self.input.layout.name,
                                             rate=self.input.rate)
        self.packets = source.demux(self.input)
        self.pending: Optional[av.Packet] = None

    @classmethod
    def open(cls, path: str | os.PathLike, out: av.container.OutputContainer, start: float,
             end: Optional[float]) -> Optional["_AudioTrack"]:
        """The audio track of `path`, or None when it has no audio stream."""
        try:
            source = av.open(str(path))
        except av.FFmpegError as err:
            raise FacecycleError(f"{path}: cannot read audio source ({err.strerror})") from None
        if not source.streams.audio:
            source.close()
            return None
        return cls(source, out, start, end)

    def mux_until(self, t: float) -> None:
        """Mux the source packets that start before output time `t` (and inside the cut)."""
        for packet in self._packets_before(t):
            if self.encoder is None:
                shift = round(self.first / packet.time_base)
                packet.pts -= shift
                if packet.dts is not None:
                    packet.dts -= shift
                packet.stream = self.output
                self.out.mux(packet)
            else:
                for frame in packet.decode():
                    self._encode(frame)

    def finish(self, t: float) -> None:
        """Mux what is left up to output time `t` and flush the encoder, if any."""
        self.mux_until(t)
        if self.encoder is not None:
            self._encode(None)
            self.out.mux(self.output.encode(None))

    def _encode(self, frame: Optional[av.AudioFrame]) -> None:
        for resampled in self.encoder.resample(frame):
            resampled.pts = None  # the AAC encoder numbers its frames from 0, the output's start
            self.out.mux(self.output.encode(resampled))

    def _packets_before(self, t: float) -> Iterator[av.Packet]:
        while self.packets is not None:
            if self.pending is None:
                self.pending = next(self.packets, None)
                if self.pending is None or (self.pending.pts is not None
                                            and self.pending.pts * self.pending.time_base >= self.last):
                    self.packets = None  # end of the source or of the cut
                    return
            packet = self.pending
            if packet.pts is None or packet.size == 0:
                self.pending = None
                continue
            time = float(packet.pts * packet.time_base)
            if time - self.first >= t:
                return
            self.pending = None
            if time >= self.first - _EPS:
                yield packet

    def close(self) -> None:
        self.source.close()
