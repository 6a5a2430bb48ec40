"""Stage results_page: one offline HTML page (results/index.html) with the videos, figures and params of the run."""
import argparse

from pipeline.common.cli import run_stage, stage_arguments
from pipeline.evaluate.results_page import write_results_page
from pipeline.models import MODELS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", default="results", help="merge_video output (compare/, sheets/, <model>/)")
    parser.add_argument("--metrics", default="metrics", help="translation.json, translation.csv, plots/, crop.json")
    parser.add_argument("--logs", default="logs", help="training logs (<model>/plots/images, <model>/metrics.json)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="model names under --results and --logs")
    parser.add_argument("--out", default="results/index.html", help="the page; its links are relative to its folder")
    args = stage_arguments(parser, "the params file, shown on the page as it is")
    write_results_page(args.results, args.metrics, args.logs, args.params, args.models, args.out)
    print(f"results_page: open {args.out} in a browser")


if __name__ == "__main__":
    run_stage(main)
