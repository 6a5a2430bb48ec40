"""Shared entry point for the stage scripts: their params file argument, one-line errors, non-zero exit codes."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from pipeline.common.errors import FacecycleError


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(); a FacecycleError becomes `<stage>: error: <message>` and exit 1."""
    prog = Path(sys.argv[0]).stem
    try:
        main()
    except FacecycleError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)


def stage_arguments(parser: argparse.ArgumentParser, params_help: str = "the params file (DVC tracks its groups)"
                    ) -> argparse.Namespace:
    """The stage's arguments, `--params` (params.yaml by default) added to those `parser` declares."""
    parser.add_argument("--params", default="params.yaml", help=params_help)
    return parser.parse_args()
