"""The repository under test, its sample clips, the tiny training settings, and running its stages
and servers inside a test."""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import yaml

from pipeline.common.params import GROUPS as PARAM_GROUPS

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "data" / "samples"
# Tiny networks on 32 px crops keep training fast; a small pool fills up and swaps within a run.
TINY = dict(crop_size=32, ngf=4, ndf=4, n_blocks=1, batch_size=1, lr=2e-4, n_epochs=1, n_epochs_decay=1, log_every=5,
            sample_every=20, checkpoint_every=10, pool_size=4)
SHIPPED = yaml.safe_load((REPO / "params.yaml").read_text())
GROUPS = {"cyclegan": TINY, "recyclegan": dict(TINY, predictor_downs=5)}


def update_params(params: dict, group: str, **values) -> dict:
    """Set keys of params group `group` in a params.yaml mapping, each where the file keeps it: in the
    shared group, or in the running profile's section (demo.cyclegan, demo.data.load_size)."""
    own = params[params["profile"]].setdefault(group, {})
    for key, value in values.items():
        (params[group] if group in params and key not in own else own)[key] = value
    return params


def over_shipped(groups: dict) -> dict:
    """params.yaml content: the keys of each group of `groups` (a dict of changed keys) over the
    shipped ones, each where params.yaml keeps it; a value that is not a dict (a top-level key such
    as lambda_cyc, or a broken group) replaces the shipped one (the code has no defaults: a group
    lists every key)."""
    params = copy.deepcopy(SHIPPED)
    for name, values in groups.items():
        if isinstance(values, dict) and name in PARAM_GROUPS:
            update_params(params, name, **values)
        else:
            params[name] = values
    return params


def copy_stages(repo: Path, *names: str) -> dict:
    """Write dvc.yaml into `repo` with the stages `names` (all by default) and copy the code they
    list as deps; return those stages."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    chosen = {name: stages[name] for name in names} if names else stages
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": chosen}, sort_keys=False))
    for dep in {d for stage in chosen.values() for d in stage["deps"] if d.startswith(("stages/", "pipeline/"))}:
        (repo / dep).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / dep, repo / dep)
    if any("videos" in stage["deps"] for stage in chosen.values()):
        shutil.copytree(REPO / "videos", repo / "videos")
    return chosen


@contextlib.contextmanager
def torch_threads(count: int):
    """`count` torch threads in this process for the block: the thread count sets the summation order."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_into(model: str, params: Path, faces: Path, out: Path) -> dict:
    """The training loop in this process with the `model` group of `params`, everything under `out`."""
    from pipeline.common.params import load_group
    from pipeline.train.loop import train

    return train(model, load_group(model, params), faces, out / "models", out / "checkpoints", out / "logs")


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(directory: Path) -> Iterator[str]:
    """http://127.0.0.1:<port> serving the files of `directory` while the block runs."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        thread.join()


def shipped_params(group: str, **changes):
    """The params group `group` as params.yaml ships it, with `changes`: the code has no defaults."""
    from pipeline.common.params import load_group

    return dataclasses.replace(load_group(group, REPO / "params.yaml"), **changes)
