"""Read a JSON or CSV file that another stage wrote, each problem a one-line FacecycleError naming
the file and, when it is missing, what writes it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from pipeline.errors import FacecycleError


def _existing(path: Path, missing: str) -> Path:
    if not path.is_file():
        raise FacecycleError(f"{path}: not found ({missing})")
    return path


def read_json(path: Path, missing: str):
    """The parsed content of `path`; `missing` says what writes it (e.g. "run infer")."""
    try:
        return json.loads(_existing(path, missing).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FacecycleError(f"{path}: not valid JSON ({err})") from None


def read_table(path: Path, what: str, missing: str, columns: Sequence[str] = (),
               dtype: Optional[dict] = None) -> pd.DataFrame:
    """The CSV table at `path`, checked for `columns`; `what` names the table in the error when it
    does not parse (e.g. "a boxes table"), `missing` what writes it."""
    try:
        table = pd.read_csv(_existing(path, missing), dtype=dtype)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise FacecycleError(f"{path}: not {what} ({str(err).splitlines()[0]})") from None
    absent = [c for c in columns if c not in table.columns]
    if absent:
        raise FacecycleError(f"{path}: missing column(s) {absent}")
    return table
