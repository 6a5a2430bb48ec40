"""pipeline.store.video on real clips: exact sequential decode, resampling, trim, bad files, H.264 encode with audio."""
import os
import time
from fractions import Fraction
from itertools import islice
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from helpers.decoders import opencv_frames, pyav_frames
from tqdm import tqdm

from pipeline.common.errors import FacecycleError
from pipeline.data.extract_frames import write_video_frames
from pipeline.store.frames import load_frames
from pipeline.store.video import VideoWriter, iter_frames, probe, select_frames


@pytest.fixture(scope="module")
def grid_clip(samples) -> Path:
    return samples / "A" / "bbaf2n.mpg"


@pytest.fixture(scope="module")
def megamind(robustness) -> Path:
    return robustness / "Megamind.avi"


@pytest.fixture(scope="module")
def grid_frames(grid_clip) -> np.ndarray:
    """All frames of the GRID clip from OpenCV's reader (another FFmpeg build than the pipeline's PyAV)."""
    return opencv_frames(grid_clip)


def audio_packets(path: Path) -> list[tuple[float, bytes]]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [(float(p.pts * p.time_base), bytes(p)) for p in container.demux(stream) if p.size]


def test_probe_grid_clip(grid_clip):
    info = probe(grid_clip)
    assert (info.fps, info.frames, info.width, info.height, info.has_audio) == (25.0, 75, 360, 288, True)
    assert info.duration == pytest.approx(3.0)


def phone_video(source: Path, out: Path, degrees: int, limit: int | None = None) -> Path:
    """The first `limit` frames of `source` re-encoded to H.264 with a display rotation: how a phone
    stores a portrait video (landscape pixels plus a rotation that players apply)."""
    with av.open(str(source)) as container, av.open(str(out), "w") as phone:
        stream = phone.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 360, 288, "yuv420p"
        stream.set_display_rotation(degrees)
        for frame in islice(container.decode(video=0), limit):
            phone.mux(stream.encode(frame))
        phone.mux(stream.encode())
    return out


@pytest.mark.parametrize("name, degrees, turns, limit", [
    ("phone.mp4", 90, 1, None), ("phone.mp4", -90, 3, None), ("phone.mov", 180, 2, None), ("short.mp4", 90, 1, 2)])
def test_a_phone_video_with_a_display_rotation_is_read_upright(tmp_path, grid_clip, name, degrees, turns, limit):
    """The reader turns the frames upright; probe must give that size too, else extract_frames refuses
    every frame of a portrait phone video as the wrong size (also a 2-frame one, whose first frame
    leaves the decoder only at its flush)."""
    path = phone_video(grid_clip, tmp_path / name, degrees, limit)
    upright = [np.rot90(stored, turns) for stored in pyav_frames(path)]  # PyAV gives the pixels as stored
    info = probe(path)
    assert (info.height, info.width, info.frames) == (*upright[0].shape[:2], limit or 75)
    assert all(np.array_equal(rgb, want) for (_, _, rgb), want in zip(iter_frames(path), upright, strict=True))
    write_video_frames(path, tmp_path / "frames", info, None, None, None, 95, tqdm(disable=True))
    assert load_frames(tmp_path, "frames", limit or 75)[0].shape == (limit or 75, *upright[0].shape)


def test_a_matroska_rotation_is_applied_too(tmp_path, grid_clip):
    """FFmpeg reads a display rotation from .mkv as from .mp4, so a Matroska phone video is upright as well."""
    path = phone_video(grid_clip, tmp_path / "phone.mkv", 90)
    info = probe(path)
    assert (info.height, info.width) == (360, 288)
    want = np.rot90(pyav_frames(path)[0])
    assert np.array_equal(next(iter_frames(path, info=info))[2], want)
    write_video_frames(path, tmp_path / "frames", info, None, None, None, 95, tqdm(disable=True))
    assert load_frames(tmp_path, "frames", 75)[0].shape == (75, 360, 288, 3)


def test_every_sample_clip_decodes_to_75_frames(samples):
    clips = sorted(samples.glob("*/*.mpg"))
    assert len(clips) == 27
    for clip in clips:
        sources = [s for s, _, _ in iter_frames(clip)]
        assert sources == list(range(75)), clip


def test_frames_times_and_pixels_match_source(grid_clip, grid_frames):
    decoded = list(iter_frames(grid_clip))
    assert [s for s, _, _ in decoded] == list(range(75))
    assert [t for _, t, _ in decoded] == pytest.approx([i / 25 for i in range(75)])
    assert all(rgb.dtype == np.uint8 and rgb.shape == (288, 360, 3) for _, _, rgb in decoded)
    assert np.array_equal(np.stack([rgb for _, _, rgb in decoded]), grid_frames)


def test_resample_25_to_10_fps_picks_nearest_source_frames(grid_clip, grid_frames):
    decoded = list(iter_frames(grid_clip, fps=10))
    sources = [s for s, _, _ in decoded]
    assert len(decoded) == 30
    assert sources[:6] == [0, 3, 5, 8, 10, 13]  # output times 0, .1, .2, .3, .4, .5 s -> frames 0, 2.5, 5, 7.5, ...
    assert sources[-1] == 73
    assert [t for _, t, _ in decoded] == pytest.approx([s / 25 for s in sources])
    for source, _, rgb in decoded:
        assert np.array_equal(rgb, grid_frames[source])


def test_upsampling_repeats_frames(grid_clip):
    sources = [s for s, _, _ in iter_frames(grid_clip, fps=50)]
    assert len(sources) == 150
    assert sources[:5] == [0, 1, 1, 2, 2]


def test_trim_selects_frames_inside_start_end(grid_clip, grid_frames):
    decoded = list(iter_frames(grid_clip, start=1.0, end=2.0))
    assert [s for s, _, _ in decoded] == list(range(25, 50))
    assert np.array_equal(np.stack([rgb for _, _, rgb in decoded]), grid_frames[25:50])
    resampled = [s for s, _, _ in iter_frames(grid_clip, fps=10, start=0.5, end=1.0)]
    assert resampled == [13, 15, 18, 20, 23]


def test_end_beyond_the_video_stops_at_its_last_frame(grid_clip):
    assert select_frames(probe(grid_clip), start=2.9, end=100.0) == [73, 74]


def test_megamind_sequential_decode_gives_every_frame_in_order(megamind):
    """Old XviD AVI, where seeking lands on wrong frames: the sequential read must give each frame.
    Checked against OpenCV, another FFmpeg build: XviD's IDCT is bit-exact in every build, but the
    two convert YUV to RGB with their own fixed-point code (C or SIMD by CPU), which may round a
    channel a level or two apart; a neighbouring frame differs by far more somewhere."""
    frames = [rgb for _, _, rgb in iter_frames(megamind)]
    assert len(frames) == 270
    reference = opencv_frames(megamind)  # an independent decoder, also read in order
    assert len(reference) == 270
    assert all(np.abs(a.astype(np.int16) - b).max() <= 2 for a, b in zip(frames, reference))
    assert frames[0].max() == 0  # the black first frame
    change = np.array([np.abs(frames[i + 1].astype(np.int16) - frames[i]).mean() for i in range(269)])
    cuts = set(np.argsort(change)[-3:] + 1)
    assert cuts == {98, 154, 200}  # the scene cuts are the three largest frame differences
    assert change[97] > 10 * np.median(change)


def test_resample_on_megamind_keeps_frames_of_a_full_decode(megamind):
    full = [rgb for _, _, rgb in iter_frames(megamind, start=3.0, end=5.0)]
    first = select_frames(probe(megamind), start=3.0, end=5.0)[0]
    for source, _, rgb in iter_frames(megamind, fps=5, start=3.0, end=5.0):
        assert np.array_equal(rgb, full[source - first])


@pytest.mark.parametrize("make_bad, why", [
    (lambda tmp, clip: tmp / "missing.mpg", "not found"),
    (lambda tmp, clip: write(tmp / "noise.mp4", np.random.default_rng(0).bytes(50_000)), "not a readable video"),
    (lambda tmp, clip: write(tmp / "cut.mpg", clip.read_bytes()[:200_000]), "truncated"),
    (lambda tmp, clip: write(tmp / "empty.avi", b""), "not a readable video"),
])
def test_bad_files_raise_one_line_error_naming_the_file(tmp_path, grid_clip, make_bad, why):
    path = make_bad(tmp_path, grid_clip)
    with pytest.raises(FacecycleError, match=why) as err:
        list(iter_frames(path))
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_truncated_avi_and_mp4_are_detected(tmp_path, megamind, grid_clip):
    avi = write(tmp_path / "cut.avi", megamind.read_bytes()[:600_000])
    with pytest.raises(FacecycleError, match="truncated"):
        probe(avi)
    mp4 = tmp_path / "whole.mp4"  # faststart mp4: header first, so a cut file still opens
    with VideoWriter(mp4, 25, 360, 288) as out:
        for _, _, rgb in iter_frames(grid_clip):
            out.write(rgb)
    cut = write(tmp_path / "cut.mp4", mp4.read_bytes()[: mp4.stat().st_size * 2 // 3])
    with pytest.raises(FacecycleError, match="truncated"):
        probe(cut)


def test_trim_outside_the_video_is_an_error(grid_clip):
    with pytest.raises(FacecycleError, match="selects no frames"):
        list(iter_frames(grid_clip, start=5.0))


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_writer_keeps_frames_fps_and_copies_mp2_audio(tmp_path, grid_clip, grid_frames):
    out = tmp_path / "copy.mp4"
    with VideoWriter(out, 25, 360, 288, audio_from=grid_clip) as writer:
        for rgb in grid_frames:
            writer.write(rgb)
    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, video.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert video.frames == 75 and video.average_rate == 25
        assert float(video.duration * video.time_base) == pytest.approx(3.0)
        assert container.duration / 1e6 == pytest.approx(3.0, abs=0.05)
        # mp4 tags any MPEG-1 audio alike (libav then names it mp3): the layer is read from the frames below
        assert (audio.codec_context.codec_tag, audio.rate) == ("mp4a", 44100)
        assert sum(frame.samples for frame in container.decode(audio)) / audio.rate == pytest.approx(3.0, abs=0.05)
    decoded = pyav_frames(out)
    assert len(decoded) == 75
    assert np.abs(np.stack(decoded).astype(np.int16) - grid_frames).mean() < 3  # crf 18: close to the input
    source, copied = audio_packets(grid_clip), audio_packets(out)
    assert [data for _, data in copied] == [data for t, data in source if t < 3.0]  # remuxed byte for byte
    assert all(data[0] == 0xFF and data[1] >> 1 & 0b1111 == 0b1110 for _, data in copied)  # MPEG-1 layer II: mp2


def test_the_preset_trades_encoding_work_not_fidelity(tmp_path, grid_frames):
    """Each preset gives the same bytes twice and frames as close to the input; the presets differ."""
    written = {}
    for preset in ("medium", "veryfast", "veryfast"):
        out = tmp_path / f"{preset}.mp4"
        with VideoWriter(out, 25, 360, 288, preset=preset) as writer:
            for rgb in grid_frames:
                writer.write(rgb)
        assert np.abs(np.stack(pyav_frames(out)).astype(np.int16) - grid_frames).mean() < 3  # crf 18
        written.setdefault(preset, set()).add(out.read_bytes())
    assert len(written["veryfast"]) == 1  # deterministic
    assert written["veryfast"] != written["medium"]  # the preset reached the encoder


def test_writer_cuts_ac3_audio_of_a_trimmed_avi(tmp_path, megamind):
    info = probe(megamind)
    out = tmp_path / "trim.mp4"
    with VideoWriter(out, info.fps, info.width, info.height, audio_from=megamind, audio_start=2.0, audio_end=4.0) as w:
        for _, _, rgb in iter_frames(megamind, start=2.0, end=4.0):
            w.write(rgb)
    assert w.frames == 48
    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.frames == 48 and video.average_rate == Fraction(2997, 125)
        assert audio.codec_context.name == "ac3"
    source, copied = audio_packets(megamind), audio_packets(out)
    expected = [data for t, data in source if 2.0 - 1e-9 <= t < 4.0]
    assert [data for _, data in copied] == expected
    assert copied[0][0] == pytest.approx(0.0, abs=0.032) and copied[-1][0] == pytest.approx(2.0, abs=0.032)


def test_writer_reencodes_audio_that_mp4_cannot_hold(tmp_path, grid_clip, grid_frames):
    source = tmp_path / "mulaw.mov"  # the GRID clip with its sound as mu-law PCM, which .mp4 refuses
    with av.open(str(grid_clip)) as grid, av.open(str(source), "w") as mov:
        video = mov.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 360, 288, "yuv420p"
        sound = mov.add_stream("pcm_mulaw", rate=44100, layout="stereo")
        for rgb in grid_frames:
            mov.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        mov.mux(video.encode(None))
        for frame in grid.decode(audio=0):
            frame.pts = None
            mov.mux(sound.encode(frame))
        mov.mux(sound.encode(None))
    out = tmp_path / "aac.mp4"
    with VideoWriter(out, 25, 360, 288, audio_from=source, audio_start=1.0) as writer:
        for rgb in grid_frames[25:]:
            writer.write(rgb)
    with av.open(str(out)) as container:
        assert container.streams.video[0].frames == 50
        assert container.streams.audio[0].codec_context.name == "aac"
        samples = sum(frame.samples for frame in container.decode(audio=0))
    assert samples / 44100 == pytest.approx(2.0, abs=0.05)


def test_writer_pads_odd_sizes_and_writes_silent_video_without_audio_source(tmp_path, grid_frames):
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, 10, 359, 287) as writer:
        for rgb in grid_frames[:5, :287, :359]:
            writer.write(rgb)
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        assert (video.width, video.height, video.frames) == (360, 288, 5)
        assert not container.streams.audio


def test_writer_failure_leaves_no_file(tmp_path, grid_frames):
    out = tmp_path / "crash.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(out, 25, 360, 288) as writer:
            writer.write(grid_frames[0])
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="expected uint8 frame"):
        with VideoWriter(out, 25, 360, 288) as writer:
            writer.write(grid_frames[0, :100])
    assert list(tmp_path.iterdir()) == []


def resident_mib() -> float:
    """This process's resident memory now (/proc/self/statm), MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
def test_decoding_a_long_720p_video_keeps_memory_flat(tmp_path, samples):
    """One frame is decoded per frame taken, so a consumer slower than the decoder (extract_frames
    encodes every frame to JPEG) never makes frames pile up: a reader decoding ahead would hold
    most of these 300 frames of 2.6 MiB (720p RGB) by the end."""
    path = tmp_path / "long_720p.mp4"
    with VideoWriter(path, 25, 1280, 720, crf=30) as out:
        for clip in sorted((samples / "A").glob("*.mpg"))[:4]:
            for _, _, rgb in iter_frames(clip):
                out.write(cv2.resize(rgb, (1280, 720)))
    resident, shapes = [], set()
    for _, _, rgb in iter_frames(path):
        time.sleep(0.005)
        shapes.add(rgb.shape)
        resident.append(resident_mib())
    assert len(resident) == 300 and shapes == {(720, 1280, 3)}
    assert max(resident[10:]) - resident[10] < 60, f"{resident[10]:.0f} MiB at frame 10, up to {max(resident):.0f} MiB"
