"""A throw-away SFTP server: Debian's sshd as a separate process on a free loopback port.

The storage engine the portal uses when ``SOULSAI_STORAGE=sftp`` (docs/deployment.md, "Storage"),
run for real in tests and benches: its own config, host key and client key under a temporary folder,
login for the current user (root in CI) with that key only, SFTP only (``ForceCommand internal-sftp``).
Its ``root`` folder is the "remote disk": what a test lists to see what the portal stored.

    server = start_sftp_server(tmp_path)
    env = {**env, **server.env()}            # a process started with this stores files there
    with override_settings(STORAGES=server.storages()): ...   # this process too
    server.stop()
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.processes import LiveProcess, free_port, wait_for

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "ssh-keygen"
PRIVSEP_DIR = Path("/run/sshd")  # sshd refuses to start without it

CONFIG = """\
Port {port}
ListenAddress {host}
HostKey {host_key}
PidFile {folder}/sshd.pid
AuthorizedKeysFile {authorized_keys}
AllowUsers {user}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTTY no
Subsystem sftp internal-sftp
ForceCommand internal-sftp
MaxStartups 64
MaxSessions 64
LogLevel VERBOSE
"""


def sshd_missing() -> str | None:
    """Why no sshd can be started here (a sentence), or None if it can."""
    if not os.access(SSHD, os.X_OK):
        return f"{SSHD} not found: apt-get install openssh-server (.ci/run does)"
    if shutil.which(SSH_KEYGEN) is None:
        return "ssh-keygen not found: apt-get install openssh-client"
    return None


@dataclass
class SftpServer:
    """A running sshd; ``env()`` and ``storages()`` point the portal's storage at it."""

    port: int
    user: str
    folder: Path
    root: Path  # the remote disk: SOULSAI_SFTP_ROOT
    key_file: Path
    known_hosts: Path
    proc: LiveProcess
    host: str = "127.0.0.1"

    def env(self) -> dict[str, str]:
        """The environment that makes a portal or learner process store files on this server."""
        return {
            "SOULSAI_STORAGE": "sftp",
            "SOULSAI_SFTP_HOST": self.host,
            "SOULSAI_SFTP_PORT": str(self.port),
            "SOULSAI_SFTP_USER": self.user,
            "SOULSAI_SFTP_KEY_FILE": str(self.key_file),
            "SOULSAI_SFTP_KNOWN_HOSTS": str(self.known_hosts),
            "SOULSAI_SFTP_ROOT": str(self.root),
        }

    def storages(self) -> dict:
        """``settings.STORAGES`` for this server (for ``override_settings`` in this process)."""
        return {
            "default": {
                "BACKEND": "portal.core.storage.SoulsSFTPStorage",
                "OPTIONS": {
                    "host": self.host,
                    "params": {"port": self.port, "username": self.user, "key_filename": str(self.key_file)},
                    "known_host_file": str(self.known_hosts),
                    "root_path": str(self.root),
                    "file_mode": 0o640,
                    "base_url": None,
                },
            },
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }

    def files(self) -> list[str]:
        """Every file on the remote disk, as paths relative to ``root``, sorted."""
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file())

    def stop(self) -> None:
        self.proc.stop()


def _keygen(path: Path) -> None:
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "soulsai-test", "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )


def _banner(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as s:
            return s.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


def start_sftp_server(folder: Path, *, timeout: float = 30, host: str = "127.0.0.1") -> SftpServer:
    """Start sshd (``sshd -D -e -f <config>``) with a fresh config and keys under ``folder``; return it
    once it sends its banner. It listens on ``host`` (loopback by default; another address for hosts in
    network namespaces, harness/netns.py). Raises RuntimeError when sshd is missing (``sshd_missing()``)."""
    missing = sshd_missing()
    if missing:
        raise RuntimeError(missing)
    try:
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    except OSError as exc:
        raise RuntimeError(f"sshd needs {PRIVSEP_DIR} ({exc}); run as root") from exc
    folder.mkdir(parents=True, exist_ok=True)
    root = folder / "remote"
    root.mkdir(exist_ok=True)
    host_key, key_file = folder / "ssh_host_ed25519_key", folder / "client_key"
    for path in (host_key, key_file):
        if not path.exists():
            _keygen(path)
    authorized_keys = folder / "authorized_keys"
    authorized_keys.write_text((folder / "client_key.pub").read_text())
    port, user = free_port(host), getpass.getuser()
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(f"[{host}]:{port} {Path(f'{host_key}.pub').read_text().split(' #')[0].strip()}\n")
    config = folder / "sshd_config"
    config.write_text(
        CONFIG.format(
            host=host, port=port, host_key=host_key, folder=folder, authorized_keys=authorized_keys, user=user
        )
    )
    proc = LiveProcess("sshd", [SSHD, "-D", "-e", "-f", str(config)], dict(os.environ), folder)
    try:
        wait_for(lambda: proc.check_alive() or _banner(port, host), timeout, "sshd's banner", proc)
    except BaseException:
        proc.stop()
        raise
    return SftpServer(
        port=port,
        user=user,
        folder=folder,
        root=root,
        key_file=key_file,
        known_hosts=known_hosts,
        proc=proc,
        host=host,
    )
