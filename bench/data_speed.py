"""Frames per second of the data half of the pipeline, decode, extract and crop, on the GRID sample
clips or on videos you name (at least two; they take domains A and B in turn).

Decode is pipeline.store.video.iter_frames alone (the floor); extract is the extract_frames stage's work
(decode + JPEG-encoding into the frame store, whose size it prints against raw frames); crop is the
crop_faces stage's work (cuts, sparse detection, tracking, crops, and the 68 landmarks of the test
faces) with `data.detect_every` and `data.test_share` from params.yaml (each clip's test segment)
and, for comparison, with the detector on every frame. The landmarks' share of crop_faces is timed
on its own over the same test faces (the shared CPU slows whole runs by different amounts; the two
timings are taken back to back).

    python bench/data_speed.py [--repeat 3] [--videos a.mp4 b.mp4 ...]
"""
import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from timing import best_seconds  # bench/, beside this script

from pipeline.common.params import load_group
from pipeline.data.crop_faces import crop_faces
from pipeline.data.extract_frames import extract_frames
from pipeline.face.dlib_models import landmark_model
from pipeline.face.landmarks import predict_landmarks
from pipeline.store.faces import read_boxes
from pipeline.store.frames import load_frames, read_videos
from pipeline.store.video import iter_frames, probe

REPO = Path(__file__).resolve().parents[1]


def rate(work, frames: int, repeat: int) -> float:
    """Frames per second of the fastest of `repeat` runs of work()."""
    return frames / best_seconds(work, repeat)


def landmark_seconds(frames_dir: Path, faces_dir: Path, margin: float, repeat: int) -> tuple[float, float, int]:
    """Seconds to load the 68-point model and to predict the landmarks of every test face of `faces_dir`
    (frames decoded beforehand), and the number of those faces."""
    rows = read_boxes(faces_dir, "test")
    rows = rows[rows["face"]]
    frames = read_videos(frames_dir).set_index("name")["frames"]
    work = []
    for video, group in rows.groupby("video"):
        store, _ = load_frames(frames_dir, video, int(frames[video]))
        work += [(np.asarray(frame), r.cx, r.cy, r.size)
                 for frame, r in zip(store.iter_at(group["frame"]), group.itertuples())]
    load = best_seconds(lambda: (landmark_model.cache_clear(), landmark_model()), 1)
    return (load, best_seconds(lambda: [predict_landmarks(f, cx, cy, size, margin) for f, cx, cy, size in work], repeat),
            len(work))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the fastest counts")
    parser.add_argument("--videos", type=Path, nargs="+", help="time these videos instead of data/samples")
    args = parser.parse_args()
    if args.videos and len(args.videos) < 2:
        parser.error("--videos: give at least two (their domains alternate A, B, A, ...)")
    params = load_group("data", REPO / "params.yaml")
    clips = [p.resolve() for p in args.videos] if args.videos else sorted((REPO / "data" / "samples").glob("[AB]/*.mpg"))
    domains = "AB" * len(clips) if args.videos else [c.parent.name for c in clips]
    found = measure(clips, domains, params, args.repeat)
    print(f"{len(clips)} {'videos' if args.videos else 'GRID clips'}, {found['frames']} frames of {found['sizes']} "
          f"(data.detect_every={params.detect_every})")
    print(f"frame store (jpeg_quality {params.jpeg_quality}): {found['stored'] / 2**20:.1f} MiB, raw frames "
          f"{found['raw'] / 2**20:.1f} MiB ({found['raw'] / found['stored']:.1f}x smaller)")
    rates = found["rates"]
    decode = rates["decode (iter_frames)"]
    for name, fps in rates.items():
        print(f"{name:38s} {fps:8.1f} frames/s   {fps / decode:6.3f} x decode")
    print(f"crop_faces / extract_frames: {rates['crop_faces'] / rates['extract_frames']:.3f}; "
          f"sparse / dense detection: {rates['crop_faces'] / rates['crop_faces, detector on every frame']:.2f}x")
    landmarks, faces, crop_seconds = found["landmarks"], found["faces"], found["crop_seconds"]
    print(f"landmarks of the {faces} test faces: {1000 * landmarks / faces:.2f} ms/face, {landmarks:.2f} s of "
          f"crop_faces' {crop_seconds:.2f} s (timed back to back): +{landmarks / (crop_seconds - landmarks):.1%} over "
          f"the stage without them; loading the model once per run: {found['landmark_load']:.2f} s")


def measure(clips: list[Path], domains, params, repeat: int) -> dict:
    """The frame stages timed on `clips` (domains[i] the domain of clips[i]): frames/s of decoding,
    extract_frames and crop_faces (sparse and dense detection), the frame store's and the raw frames'
    bytes, and the landmark share of crop_faces."""
    with tempfile.TemporaryDirectory() as tmp:
        raw, frames_dir = Path(tmp) / "raw", Path(tmp) / "frames"
        raw.mkdir()
        names = [f"v{i}_{clip.stem}" for i, clip in enumerate(clips)]  # two clips may share a file name
        for name, clip in zip(names, clips):
            (raw / f"{name}{clip.suffix}").symlink_to(clip)
        pd.DataFrame({"name": names, "domain": list(domains[:len(clips)]), "split": None,  # test_share of each
                      "file": [f"{n}{c.suffix}" for n, c in zip(names, clips)], "sha256": None, "start": None, "end": None}
                     ).to_csv(raw / "videos.csv", index=False)
        infos = [probe(clip) for clip in clips]
        count, raw_bytes = sum(i.frames for i in infos), sum(i.frames * i.height * i.width * 3 for i in infos)

        def extract() -> None:
            frames_dir.mkdir(exist_ok=True)
            extract_frames(raw, frames_dir, None, params.jpeg_quality).to_csv(frames_dir / "videos.csv", index=False)

        rates = {"decode (iter_frames)": rate(lambda: [None for clip in clips for _ in iter_frames(clip)],
                                              count, repeat),
                 "extract_frames": rate(extract, count, repeat)}
        stored = sum(f.stat().st_size for f in frames_dir.glob("*.mjpeg"))
        dense = dataclasses.replace(params, detect_every=1)
        for name, setting in (("crop_faces", params), ("crop_faces, detector on every frame", dense)):
            rates[name] = rate(lambda: crop_faces(frames_dir, Path(tmp) / "faces", setting), count, repeat)
        crop_seconds = best_seconds(lambda: crop_faces(frames_dir, Path(tmp) / "faces", params), repeat)
        load, landmarks, faces = landmark_seconds(frames_dir, Path(tmp) / "faces", params.margin, repeat)
    return {"frames": count, "sizes": ", ".join(sorted({f"{i.width}x{i.height}" for i in infos})), "stored": stored,
            "raw": raw_bytes, "rates": rates, "crop_seconds": crop_seconds, "landmarks": landmarks, "faces": faces,
            "landmark_load": load}


if __name__ == "__main__":
    main()
