"""How each stage's time, memory and disk grow with the frames: the whole pipeline at several sizes.

Long videos are built from the GRID sample clips in data/samples, looped in order, scaled to the
asked height and pillarboxed to 16:9, and encoded with PyAV (H.264): one video per domain and split,
frames shared as in the reference project (16,485 train / 5,903 test, A and B alike). Each size runs
in a git + DVC repo of its own (the project's dvc.yaml and code, its demo params) with the videos in
videos/, as a user's would be. Every stage runs as `dvc repro -s <stage>`, one process tree, whose
wall time, peak RSS (the largest process of the tree, from wait4), and bytes added to the work tree
and to the DVC cache are printed; training is capped at --train-steps steps so its figure is the
per-stage overhead. After the run: a no-op `dvc status` and `dvc repro`.

    python bench/scale.py --sizes 1 4 16 --base-frames 1400 --resolution 720 --workdir /tmp/scale
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import yaml

from pipeline.store.faces import load_crops
from pipeline.train.dataset import triplet_starts

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples"
REFERENCE = {"train": 16485, "test": 5903}  # the reference project's frames
WIDTH = {720: 1280, 1080: 1920}
MODELS = ("cyclegan", "recyclegan")


def clip_paths(entries: list[dict]) -> dict[tuple[str, str], list[Path]]:
    """The shipped sample clips by (domain, split), in the order the video list gives them."""
    groups: dict[tuple[str, str], list[Path]] = {}
    for entry in entries:
        if entry.get("path", "").startswith("data/samples/"):
            groups.setdefault((entry["domain"], entry.get("split", "train")), []).append(REPO / entry["path"])
    return groups


def split_frames(total: int) -> dict[tuple[str, str], int]:
    """Frames of each (domain, split) video: the reference's train/test shares, halved between A and B."""
    test = round(total * REFERENCE["test"] / sum(REFERENCE.values()))
    shares = {"train": total - test, "test": test}
    return {(domain, split): shares[split] // 2 + (domain == "A") * (shares[split] % 2)
            for split in shares for domain in "AB"}


def pillarbox(rgb: np.ndarray, height: int) -> np.ndarray:
    """`rgb` scaled to `height` (aspect kept) and centred on a black 16:9 frame."""
    width = round(rgb.shape[1] * height / rgb.shape[0])
    scaled = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)
    frame = np.zeros((height, WIDTH[height], 3), np.uint8)
    left = (WIDTH[height] - width) // 2
    frame[:, left:left + width] = scaled
    return frame


def looped_frames(clips: list[Path], count: int):
    """`count` frames of `clips` played in order, again and again."""
    made = 0
    while True:
        for clip in clips:
            with av.open(str(clip)) as container:
                for frame in container.decode(video=0):
                    if made == count:
                        return
                    yield frame.to_ndarray(format="rgb24")
                    made += 1


def encode(path: Path, frames, height: int) -> None:
    """H.264 at 25 fps (the GRID rate), 4:2:0, CRF 20, written to a temporary name then moved."""
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "20", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = WIDTH[height], height, "yuv420p"
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pillarbox(rgb, height), format="rgb24")))
        container.mux(stream.encode())
    tmp.rename(path)


def build_videos(folder: Path, groups: dict, total: int, height: int) -> list[dict]:
    """One long video per (domain, split) in `folder` (kept for later runs); their video-list entries."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for (domain, split), count in split_frames(total).items():
        path = folder / f"{domain}_{split}.mp4"
        if not path.exists():
            print(f"building {path} ({count} frames)", file=sys.stderr)
            encode(path, looped_frames(groups[domain, split], count), height)
        entries.append({"name": f"long_{domain}_{split}", "domain": domain, "split": split, "path": path})
    return entries


def video_list_file() -> tuple[Path, dict | list]:
    """Where the project lists its videos: videos.yaml at the root when it has one, else params.yaml."""
    listing = REPO / "videos.yaml"
    return (listing, yaml.safe_load(listing.read_text())) if listing.exists() else (REPO / "params.yaml", None)


def shipped_entries() -> list[dict]:
    listing, content = video_list_file()
    if content is None:
        return yaml.safe_load(listing.read_text())["data"]["videos"]
    return content["videos"] if isinstance(content, dict) else content


def make_repo(root: Path, videos: list[dict]) -> None:
    """A git + DVC repo at `root` with the project's dvc.yaml, code and params, listing `videos`
    (hard links into root/videos/, tracked by DVC as a user's own videos are)."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    for folder in ("pipeline", "stages"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(SAMPLES, root / "data" / "samples")  # a dep of fetch
    (root / "videos").mkdir()
    shipped = subprocess.run(["git", "ls-files", "videos"], cwd=REPO, capture_output=True, text=True, check=True)
    for name in shipped.stdout.split():  # the folder's README (and ignore rules), not a user's videos
        shutil.copy(REPO / name, root / name)
    listed = []
    for video in videos:
        target = root / "videos" / video["path"].name
        os.link(video["path"], target)
        listed.append(dict(video, path=f"videos/{target.name}"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    listing, content = video_list_file()
    if content is None:
        params["data"]["videos"] = listed
    else:
        written = dict(content, videos=listed) if isinstance(content, dict) else listed
        (root / listing.name).write_text(yaml.safe_dump(written, sort_keys=False))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    tracked = [p.name for p in root.iterdir()]  # videos/ holds the .dvc files and DVC's .gitignore, no video
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"],
                    ["dvc", "add", "-q", *(item["path"] for item in listed)],  # own videos are DVC-tracked
                    ["git", "add", *tracked, ".dvc"],
                    ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "pipeline"]):
        subprocess.run(command, cwd=root, env=ENV, check=True)


def cap_training(root: Path, steps: int) -> None:
    """Set each model's epochs so that training takes exactly `steps` steps on these crops."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    faces = root / "data" / "faces"
    counts = {d: len(load_crops(faces, d, "train")) for d in "AB"}
    samples = {"cyclegan": max(counts.values()),
               "recyclegan": max(len(triplet_starts(faces, d, counts[d])) for d in "AB")}
    recipe = params[params["profile"]]  # the running profile's training groups
    for model in MODELS:  # total steps = ceil(epochs * samples / batch)
        recipe[model].update(n_epochs=(steps - 0.5) * recipe[model]["batch_size"] / samples[model], n_epochs_decay=0.0)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def disk_bytes(root: Path) -> tuple[int, int]:
    """Bytes of the work tree (less .git, .dvc and the input videos) and of the DVC cache; a file
    hard-linked several times counts once."""
    seen: set[int] = set()
    totals = [0, 0]
    for folder, dirs, files in os.walk(root):
        rel = Path(folder).relative_to(root).parts
        if rel[:1] in (("videos",), (".git",)) or rel[:2] in (("data", "samples"), (".dvc", "tmp")):
            dirs[:] = []
            continue
        cache = rel[:2] == (".dvc", "cache")
        for name in files:
            stat = os.lstat(os.path.join(folder, name))
            if stat.st_ino not in seen:
                seen.add(stat.st_ino)
                totals[cache] += stat.st_size
    return totals[0], totals[1]


def timed(root: Path, log, *command: str) -> tuple[float, float]:
    """Run `command` in `root`; (wall seconds, peak RSS in MiB of its largest process).

    GNU time starts it and reads its rusage: a child forked from this process would first count
    this process's own pages (numpy, torch) as its peak."""
    usage = root.parent / f"{root.name}.rusage"
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(usage), *command], cwd=root,
                          env=dict(ENV, PYTHONPATH=str(root)), stdout=log, stderr=log)
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed in {root} (exit {done.returncode}); see {log.name}")
    return wall, int(usage.read_text().split()[-1]) / 1024


def run_size(root: Path, frames: int, train_steps: int) -> tuple[list[dict], dict]:
    """Every stage of dvc.yaml in order, then the no-op checks; their figures."""
    stages = list(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])
    rows = []
    with open(root.parent / f"{root.name}.log", "w") as log:
        for stage in stages:
            if stage.startswith("train_") and stage == next(s for s in stages if s.startswith("train_")):
                cap_training(root, train_steps)
            tree, cache = disk_bytes(root)
            wall, rss = timed(root, log, "dvc", "repro", "-s", stage)
            tree_after, cache_after = disk_bytes(root)
            rows.append({"stage": stage, "wall": wall, "fps": frames / wall, "rss": rss,
                         "written": (tree_after - tree) / 2**20, "cached": (cache_after - cache) / 2**20})
            print(f"  {stage:<17} {wall:8.1f} s {frames / wall:9.1f} frames/s {rss:8.0f} MiB "
                  f"{rows[-1]['written']:9.1f} MiB written {rows[-1]['cached']:9.1f} MiB cached", flush=True)
        noop = {name: min(timed(root, log, "dvc", *command)[0] for _ in range(3))
                for name, command in (("dvc status", ["status"]), ("dvc repro", ["repro"]))}
    return rows, noop


def print_growth(results: dict[int, tuple[list[dict], dict]]) -> None:
    """Each stage's figures at the largest size over the smallest: frames, time, RSS."""
    small, large = min(results), max(results)
    ratio = large / small
    print(f"\ngrowth {large} / {small} frames = {ratio:.2f}x (time per frame 1.00x = linear; RSS 1.00x = flat)")
    for before, after in zip(results[small][0], results[large][0]):
        print(f"  {before['stage']:<17} time {after['wall'] / before['wall']:6.2f}x "
              f"(per frame {after['wall'] / before['wall'] / ratio:5.2f}x)  RSS {after['rss'] / before['rss']:5.2f}x")
    for name in results[small][1]:
        print(f"  no-op {name:<11} {results[large][1][name] / results[small][1][name]:6.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 4, 16], help="multiples of --base-frames")
    parser.add_argument("--base-frames", type=int, default=1400, help="frames of the 1x size (16x 1400 = 22,400)")
    parser.add_argument("--resolution", type=int, choices=sorted(WIDTH), default=720, help="video height")
    parser.add_argument("--train-steps", type=int, default=20, help="optimisation steps of each training stage")
    parser.add_argument("--workdir", type=Path, required=True, help="holds the built videos and one repo per size")
    args = parser.parse_args()
    groups = clip_paths(shipped_entries())
    results = {}
    for size in args.sizes:
        frames = round(size * args.base_frames)
        videos = build_videos(args.workdir / "videos" / f"{args.resolution}p_{frames}", groups, frames, args.resolution)
        root = args.workdir / f"repo_{args.resolution}p_{frames}"
        make_repo(root, videos)
        shares = ", ".join(f"{video['name']} {count}" for video, count in zip(videos, split_frames(frames).values()))
        print(f"{frames} frames at {WIDTH[args.resolution]}x{args.resolution} ({shares}), training {args.train_steps} "
              f"steps, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs:", flush=True)
        rows, noop = run_size(root, frames, args.train_steps)
        extract_crop = sum(r["wall"] for r in rows if r["stage"] in ("extract_frames", "crop_faces"))
        print(f"  extract_frames + crop_faces {frames / extract_crop:.1f} frames/s; peak RSS of any stage "
              f"{max(r['rss'] for r in rows):.0f} MiB; work tree {sum(r['written'] for r in rows):.0f} MiB, "
              f"DVC cache {sum(r['cached'] for r in rows):.0f} MiB")
        print("  no-op " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in noop.items())
              + f"; load average {os.getloadavg()[0]:.1f}", flush=True)
        results[frames] = rows, noop
    if len(results) > 1:
        print_growth(results)


ENV = dict(os.environ, DVC_NO_ANALYTICS="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")

if __name__ == "__main__":
    main()
