"""Stage fetch: copy or download every video that videos.yaml lists into one folder, with its sha256."""
import argparse

from pipeline.common.cli import run_stage
from pipeline.common.files import atomic_dir
from pipeline.common.params import load_videos
from pipeline.data.fetch import fetch_videos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="data/raw", help="writes <out>/<name><ext> and <out>/videos.csv")
    parser.add_argument("--videos", default="videos.yaml", help="the list of videos (name, domain, path or url, ...)")
    args = parser.parse_args()
    videos = load_videos(args.videos)
    with atomic_dir(args.out) as tmp:
        table = fetch_videos(videos, tmp)
        table.to_csv(tmp / "videos.csv", index=False)
    print(f"fetch: {len(table)} videos in {args.out}/")


if __name__ == "__main__":
    run_stage(main)
