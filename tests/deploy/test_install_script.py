"""The one-line installer's POSIX twin (``/download/install.sh``) against the real portal: it installs
the client into a fresh folder with its own interpreter, and refuses a wheel the release key did not sign.

Nothing may download here, so the interpreter archive is a local stand-in with python-build-standalone's
layout (``python/bin/python3``: a venv-shaped folder over this machine's CPython whose packages it
shares), named by the script's own SOULSAI_PYTHON_URL / SOULSAI_PYTHON_SHA256, and pip resolves from
no index (PIP_NO_INDEX). The wheel, its signature and release.json come from the portal. The script is
the portal's, with a throwaway release key put in place of the maintainers' (a test cannot hold their
private key), as tests/e2e/test_self_update.py does for the client.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import sysconfig
import tarfile
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.files.storage import default_storage

import client_app
from client_app import release
from client_app.release_key import RELEASE_PUBLIC_KEY
from portal.downloads import services
from tests.conftest import process_env, start_asgi

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def portal(redis_server, django_db_setup, django_db_blocker, tmp_path_factory):
    services.client_wheel_build()
    server = start_asgi(tmp_path_factory.mktemp("install-portal"))
    yield server
    server.stop()
    signature = services.client_wheel_info().name + release.SIGNATURE_SUFFIX
    if default_storage.exists(signature):
        default_storage.delete(signature)


@pytest.fixture(scope="module")
def python_archive(tmp_path_factory) -> tuple[Path, str]:
    """``python/`` as python-build-standalone lays it out, standing in for the real archive."""
    root = tmp_path_factory.mktemp("archive")
    python = root / "python"
    (python / "bin").mkdir(parents=True)
    base = Path(sys._base_executable)
    (python / "pyvenv.cfg").write_text(f"home = {base.parent}\ninclude-system-site-packages = false\n")
    (python / "bin" / "python3").symlink_to(base)
    site = python / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    site.mkdir(parents=True)
    (site / "zz_shared.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    archive = root / "python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(python, arcname="python")
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


def sign_portal_wheel(signer: Ed25519PrivateKey) -> services.WheelInfo:
    info = services.client_wheel_info()
    with default_storage.open(info.name, "rb") as handle:
        services.client_signature_store(info=info, signature=release.sign(handle.read(), signer))
    return info


def run_installer(portal, archive: tuple[Path, str], key: Ed25519PrivateKey, home: Path):
    script = urllib.request.urlopen(f"{portal.url}/download/install.sh", timeout=10).read().decode()
    assert f'RELEASE_KEY="{RELEASE_PUBLIC_KEY}"' in script  # as served: the key of the code the server runs
    script = script.replace(RELEASE_PUBLIC_KEY, release.public_key_text(key.public_key()))
    env = {k: v for k, v in process_env().items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(
        HOME=str(home), XDG_DATA_HOME=str(home / "data"), SOULSAI_PYTHON_URL=archive[0].as_uri(),
        SOULSAI_PYTHON_SHA256=archive[1], PIP_NO_INDEX="1", PIP_FIND_LINKS=str(home / "wheelhouse"),
        PATH=os.environ["PATH"],
    )  # fmt: skip
    (home / "wheelhouse").mkdir(parents=True)
    return subprocess.run(
        ["sh", "-s"], input=script, env=env, cwd=home, capture_output=True, text=True, timeout=180
    )


def test_install_sh_installs_the_signed_client_with_its_own_interpreter(portal, python_archive, tmp_path):
    key = Ed25519PrivateKey.generate()
    info = sign_portal_wheel(key)

    result = run_installer(portal, python_archive, key, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"installed soulsai-client {info.version}" in result.stdout
    dest = tmp_path / "data" / "soulsai-client"
    version = subprocess.run(
        [tmp_path / ".local" / "bin" / "soulsai-client", "--version"], capture_output=True, text=True,
        cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert version.stdout.strip() == f"soulsai-client {client_app.__version__}", version.stderr
    assert list((dest / "python" / "lib").glob("python3*/site-packages/soulsai_client-*.dist-info"))
    desktop = (tmp_path / "data" / "applications" / "soulsai-client.desktop").read_text()
    assert f"Exec={dest}/python/bin/soulsai-client-gui" in desktop


def test_install_sh_refuses_a_wheel_the_release_key_did_not_sign(portal, python_archive, tmp_path):
    info = sign_portal_wheel(Ed25519PrivateKey.generate())  # the right sha256, another signer

    result = run_installer(portal, python_archive, Ed25519PrivateKey.generate(), tmp_path)

    assert result.returncode != 0
    assert "not a SoulsAI release" in result.stderr
    assert f"refused client {info.version}: not installed" in result.stderr
    assert not list((tmp_path / "data").rglob("soulsai_client-*.dist-info"))
    assert not (tmp_path / ".local" / "bin" / "soulsai-client").exists()
