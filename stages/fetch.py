"""Stage fetch: copy or download every video of `data.videos` into one folder, with its sha256."""
import argparse

from pipeline.atomic import atomic_dir
from pipeline.cli import run_stage
from pipeline.fetch import fetch_videos
from pipeline.params import load_group


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="data/raw", help="writes <out>/<name><ext> and <out>/videos.csv")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = load_group("data", args.params)
    with atomic_dir(args.out) as tmp:
        table = fetch_videos(params.videos, tmp)
        table.to_csv(tmp / "videos.csv", index=False)
    print(f"fetch: {len(table)} videos in {args.out}/")


if __name__ == "__main__":
    run_stage(main)
