"""An SSH server on loopback for a DVC remote: Debian's `openssh-server` run in the foreground.

sshd runs as the current user with a config, host key and authorised client key of its own in a
temporary folder, on a free port of 127.0.0.1, serving SFTP (what dvc-ssh speaks) from inside the
process (`internal-sftp`). The user's own ~/.ssh is neither read nor written: dvc-ssh takes the
client key from `keyfile`, and does not check the server's host key (sshfs, which it runs on,
passes asyncssh `known_hosts=None`). Where sshd is missing, or cannot run here, `unusable` says why.
"""
from __future__ import annotations

import contextlib
import getpass
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

SSHD = Path("/usr/sbin/sshd")  # sshd re-executes itself, so it must be started by its absolute path
PRIVSEP = Path("/run/sshd")  # sshd run by root needs it; Debian makes it at boot (systemd-tmpfiles), containers lack it

CONFIG = """\
ListenAddress 127.0.0.1
HostKey {root}/host_key
AuthorizedKeysFile {root}/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
Subsystem sftp internal-sftp
"""


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    user: str
    keyfile: Path  # the client's private key, authorised by the server

    def url(self, folder: Path) -> str:
        """The DVC remote URL of `folder` on this server (user and key go into .dvc/config.local)."""
        return f"ssh://{self.host}:{self.port}{folder}"


def unusable() -> str | None:
    """Why no sshd can be started here, or None."""
    if not SSHD.is_file():
        return f"{SSHD} not found (Debian: apt-get install openssh-server; .ci/run installs it)"
    if os.geteuid() == 0 and not PRIVSEP.is_dir():
        try:
            PRIVSEP.mkdir(mode=0o755)
        except OSError as error:
            return f"sshd needs its privilege separation folder {PRIVSEP}: {error}"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _keygen(path: Path) -> str:
    """A new passphrase-less ed25519 key at `path`; its public line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "facecycle-test", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


@contextlib.contextmanager
def serving(root: Path, timeout: float = 20.0) -> Iterator[Server]:
    """sshd on 127.0.0.1 while the block runs, its files under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    _keygen(root / "host_key")
    (root / "authorized_keys").write_text(_keygen(root / "client_key") + "\n")
    (root / "sshd_config").write_text(CONFIG.format(root=root))
    port = _free_port()
    log = root / "sshd.log"
    with open(log, "w") as stderr:
        sshd = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(root / "sshd_config"), "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + timeout
        while "Server listening" not in log.read_text():
            assert sshd.poll() is None, f"sshd exited with {sshd.returncode}: {log.read_text()}"
            assert time.monotonic() < deadline, f"sshd not listening after {timeout} s: {log.read_text()}"
            time.sleep(0.05)
        yield Server("127.0.0.1", port, getpass.getuser(), root / "client_key")
    finally:
        sshd.terminate()
        sshd.wait(timeout=10)
