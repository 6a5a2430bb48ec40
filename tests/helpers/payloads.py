"""Malicious files: a pickle or torch.save file whose unpickling creates a marker file.

Loading code that never unpickles leaves the marker absent (tests/test_translate.py shows the
payload really runs when unpickled).
"""
import pathlib
import pickle

import torch


class Payload:
    """Unpickling this creates `marker`: what a malicious model file could do."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def write_pickle(path: pathlib.Path, marker: pathlib.Path) -> None:
    path.write_bytes(pickle.dumps({"G_A.model.1.weight": Payload(marker)}))


def write_torch_save(path: pathlib.Path, marker: pathlib.Path) -> None:
    torch.save({"G_A.model.1.weight": Payload(marker)}, path)
