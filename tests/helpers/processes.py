"""Running stage scripts, git and DVC in subprocesses, as a user's shell would.

ENV: one OpenMP thread (bit-exact comparisons need one summation order, and on a shared 2-core
machine threads spinning against each other make steps 10x slower); the venv's bin first on PATH,
so `dvc` and the `python` of dvc.yaml's commands are this interpreter's; no DVC analytics.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ENV = dict(os.environ, OMP_NUM_THREADS="1", DVC_NO_ANALYTICS="1",
           PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def sh(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run a command in `cwd` and insist that it succeeds."""
    done = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done


def commit(repo: Path, message: str) -> None:
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message)


def kill_once_saved(saved: Path, *command: str, cwd: Path | None = None) -> None:
    """Start `command` and SIGKILL it with all its descendants (a dvc command and the stage it
    spawned, a stage alone, or torchrun and its workers, which it starts in sessions of their own)
    as soon as `saved` exists."""
    process = subprocess.Popen(command, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    while not saved.exists() and process.poll() is None:
        time.sleep(0.01)
    assert saved.exists(), f"{command} ended (exit {process.returncode}) before writing {saved}"
    descendants = psutil.Process(process.pid).children(recursive=True)  # psutil: a dependency of DVC
    os.killpg(process.pid, signal.SIGKILL)
    for child in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    process.wait()
    psutil.wait_procs(descendants)
