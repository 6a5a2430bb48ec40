"""Read a file another stage wrote: one checked reader per kind (JSON object, CSV table, .npy array),
each problem a one-line FacecycleError naming the file and, when it is missing, the stage that writes it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from pipeline.common.errors import FacecycleError


def required(path: Path, writer: str) -> Path:
    """`path`, which must exist (a file or a folder); `writer`: the stage that writes it."""
    if not path.exists():
        raise FacecycleError(f"{path}: not found (the {writer} stage writes it)")
    return path


def read_json(path: Path, writer: str, keys: dict[str, type] | None = None) -> dict:
    """The JSON object in `path`, with each of `keys` present and of its type."""
    try:
        data = json.loads(required(path, writer).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FacecycleError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise FacecycleError(f"{path}: expected a JSON object")
    for key, kind in (keys or {}).items():
        if not isinstance(data.get(key), kind):
            raise FacecycleError(f"{path}: expected '{key}' to be a {kind.__name__}, got {data.get(key)!r}")
    return data


def read_table(path: Path, writer: str, columns: Sequence[str] = (), dtype: Optional[dict] = None) -> pd.DataFrame:
    """The CSV table at `path`, checked for `columns`."""
    try:
        table = pd.read_csv(required(path, writer), dtype=dtype)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise FacecycleError(f"{path}: not a readable CSV table ({str(err).splitlines()[0]})") from None
    absent = [c for c in columns if c not in table.columns]
    if absent:
        raise FacecycleError(f"{path}: missing column(s) {absent}")
    return table


def load_array(path: Path, writer: str, mmap_mode: str = "r") -> np.ndarray:
    """The .npy array at `path`, memory-mapped (its shape and type are the caller's to check)."""
    try:
        return np.load(required(path, writer), mmap_mode=mmap_mode)
    except ValueError as err:
        raise FacecycleError(f"{path}: not a .npy array ({err})") from None
