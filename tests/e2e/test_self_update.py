"""An old client installed in its own environment updates itself from the real portal, only to a wheel
the release key signed, and keeps streaming after the restart.

The old client is the project's wheel built with version 0.1.9 and a throwaway release public key (a
test cannot hold the maintainers' private key); the portal serves its real current wheel, signed with
the throwaway key (or, in the refusal test, with another key).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.files.storage import default_storage

import client_app
from client_app import release
from portal.campaigns.services import campaign_create, campaign_launch, campaign_redis_sync
from portal.downloads import services
from portal.machines.models import MachineToken
from portal.machines.services import token_create
from tests.conftest import process_env, start_asgi
from trainer.keys import CampaignKeys

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
OLD_VERSION = "0.1.9"


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def old_wheel(tmp_path_factory, key) -> Path:
    """The project's client wheel as version 0.1.9, trusting ``key``."""
    src = tmp_path_factory.mktemp("old-src")
    shutil.copy(ROOT / "pyproject.toml", src)
    (src / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "client.md", src / "docs")
    shutil.copytree(ROOT / "client_app", src / "client_app", ignore=shutil.ignore_patterns("__pycache__"))
    init = src / "client_app" / "__init__.py"
    text = init.read_text()
    assert f'__version__ = "{client_app.__version__}"' in text
    init.write_text(
        text.replace(f'__version__ = "{client_app.__version__}"', f'__version__ = "{OLD_VERSION}"')
    )
    (src / "client_app" / "release_key.py").write_text(
        f'RELEASE_PUBLIC_KEY = "{release.public_key_text(key.public_key())}"\n'
    )
    out = tmp_path_factory.mktemp("old-wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "--quiet", "-w", str(out)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    (wheel,) = out.glob("soulsai_client-*.whl")
    return wheel


@pytest.fixture(scope="module")
def portal(redis_server, django_db_setup, django_db_blocker, tmp_path_factory):
    """The real portal with its current wheel stored, letting 0.1.x clients in."""
    services.client_wheel_build()
    server = start_asgi(tmp_path_factory.mktemp("update-portal"), env={"SOULSAI_MIN_CLIENT_VERSION": "0.1.0"})
    yield server
    server.stop()
    signature = services.client_wheel_info().name + release.SIGNATURE_SUFFIX
    if default_storage.exists(signature):  # other tests' portals serve an unsigned wheel
        default_storage.delete(signature)


def sign_portal_wheel(signer: Ed25519PrivateKey) -> services.WheelInfo:
    info = services.client_wheel_info()
    with default_storage.open(info.name, "rb") as handle:
        services.client_signature_store(info=info, signature=release.sign(handle.read(), signer))
    return info


def make_venv(folder: Path, wheel: Path) -> tuple[Path, dict[str, str]]:
    """A venv sharing this one's packages (a .pth line: fast, no downloads) with ``wheel`` installed."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=60)
    python = folder / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(site, "zz_shared.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in process_env().items() if k != "PYTHONPATH"}
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)],
                   check=True, timeout=120, cwd=folder, env=env)  # fmt: skip
    return python, env


def installed_version(python: Path, cwd: Path) -> str:
    return subprocess.run(
        [python, "-c", "import client_app; print(client_app.__version__)"], check=True, capture_output=True,
        text=True, cwd=cwd,
    ).stdout.strip()  # fmt: skip


def run_client(
    python: Path, env: dict[str, str], portal, token: str, tmp: Path, *extra: str, code: int = 0
) -> str:
    argv = [python, "-m", "client_app", "run", "--server", portal.url, "--spool-dir", str(tmp / "spool"),
            "--max-steps", "300", "--seed", "3", *extra]  # fmt: skip
    # cwd outside the checkout: the venv's installed client is the one imported, not ./client_app.
    result = subprocess.run(
        argv, env={**env, "SOULSAI_TOKEN": token}, cwd=tmp, capture_output=True, text=True, timeout=150
    )
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert "Traceback" not in output
    return output


def campaign_and_token(django_user_model, slug: str):
    user = django_user_model.objects.create_user(slug, f"{slug}@example.com", "pw-12345678")
    campaign = campaign_launch(campaign=campaign_create(slug=slug, name=slug, env_id="CartPole-v1"))
    campaign_redis_sync(campaign=campaign)
    machine, token = token_create(user=user, campaign=campaign, name="rig")
    return campaign, machine, token


def test_an_old_client_installs_the_signed_new_one_restarts_and_streams(
    portal, old_wheel, key, django_user_model, redis_client, tmp_path
):
    info = sign_portal_wheel(key)
    python, env = make_venv(tmp_path / "venv", old_wheel)
    assert installed_version(python, tmp_path) == OLD_VERSION
    campaign, machine, token = campaign_and_token(django_user_model, "updates")

    output = run_client(python, env, portal, token, tmp_path)

    assert f"updating the client from {OLD_VERSION} to {info.version}" in output
    assert f"updated the client from {OLD_VERSION} to {info.version}" in output  # said by the new process
    assert installed_version(python, tmp_path) == info.version
    # The new client streamed everything, with the same settings (spool, seed, --max-steps).
    stats = redis_client.hgetall(CampaignKeys(campaign.id).stats)
    assert int(stats[b"samples"]) == 300
    assert not list((tmp_path / "spool").rglob("*.chunk")), "acked chunks leave the spool"
    assert MachineToken.objects.get(id=machine.id).client_version == info.version


def test_a_wheel_signed_with_another_key_is_refused_and_the_old_client_keeps_streaming(
    portal, old_wheel, django_user_model, redis_client, tmp_path
):
    info = sign_portal_wheel(Ed25519PrivateKey.generate())  # the right sha256, the wrong signer
    python, env = make_venv(tmp_path / "venv", old_wheel)
    campaign, machine, token = campaign_and_token(django_user_model, "refuses")

    output = run_client(python, env, portal, token, tmp_path)

    assert f"not updated, going on with client {OLD_VERSION}: refused client {info.version}" in output
    assert "not a SoulsAI release" in output
    assert installed_version(python, tmp_path) == OLD_VERSION
    stats = redis_client.hgetall(CampaignKeys(campaign.id).stats)
    assert int(stats[b"samples"]) == 300
    assert MachineToken.objects.get(id=machine.id).client_version == OLD_VERSION

    # --no-auto-update: not even tried (the run may only say that a newer client is available).
    output = run_client(python, env, portal, token, tmp_path, "--no-auto-update")
    for attempt in ("updating the client", "not updated", "refused client", "not a SoulsAI release"):
        assert attempt not in output, output
    assert installed_version(python, tmp_path) == OLD_VERSION

    # The campaign now requires the new client: the relay's refusal triggers another try, refused as
    # well; the old client exits 2 with the server's message (its spool kept for the next start).
    campaign.min_client_version = info.version
    campaign.save(update_fields=["min_client_version"])
    campaign_redis_sync(campaign=campaign)
    output = run_client(python, env, portal, token, tmp_path, code=2)
    assert f"needs SoulsAI client {info.version} or newer" in output
    assert output.count("not a SoulsAI release") == 2, output
    assert installed_version(python, tmp_path) == OLD_VERSION


# ---------------------------------------------------------------------------------------------------
# A running client hears of a newer release (the relay's ``release`` notice) and updates without a restart
# by the volunteer.


def start_running_client(python: Path, env: dict[str, str], portal, token: str, tmp: Path, *extra: str):
    """The old client, paced (60 steps/s) so that it is still playing when the release is signed; the
    process once it said which campaign it plays."""
    argv = [python, "-m", "client_app", "run", "--server", portal.url, "--spool-dir", str(tmp / "spool"),
            "--max-steps", "300", "--max-sps", "60", "--seed", "3", *extra]  # fmt: skip
    proc = subprocess.Popen(
        argv, env={**env, "SOULSAI_TOKEN": token}, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    lines = []
    for line in proc.stdout:  # the event: the client has its campaign and plays
        lines.append(line)
        if "chunks of" in line:
            return proc, lines
    proc.wait(timeout=10)
    raise AssertionError("".join(lines))


def finish(proc, lines: list[str]) -> str:
    lines.extend(proc.stdout)
    assert proc.wait(timeout=150) == 0, "".join(lines)
    output = "".join(lines)
    assert "Traceback" not in output
    return output


def unsign_portal_wheel() -> None:
    info = services.client_wheel_info()
    if default_storage.exists(info.name + release.SIGNATURE_SUFFIX):
        default_storage.delete(info.name + release.SIGNATURE_SUFFIX)


def test_a_running_client_told_of_a_signed_release_updates_at_a_chunk_end_and_streams_on(
    portal, old_wheel, key, django_user_model, redis_client, tmp_path
):
    unsign_portal_wheel()  # at start the server offers nothing installable: the client starts as 0.1.9
    python, env = make_venv(tmp_path / "venv", old_wheel)
    campaign, machine, token = campaign_and_token(django_user_model, "live-update")
    proc, lines = start_running_client(python, env, portal, token, tmp_path)

    info = sign_portal_wheel(key)  # the maintainers' signature arrives: the relay tells connected clients
    output = finish(proc, lines)

    assert f"client {info.version} is signed by the release key" in output
    assert f"stopping to install client {info.version}: the spool stays on disk" in output
    assert f"updated the client from {OLD_VERSION} to {info.version}" in output  # said by the new process
    assert installed_version(python, tmp_path) == info.version
    # The old process's steps, then --max-steps again in the new one (same settings): every one stored.
    steps = [int(n) for n in re.findall(r"done: (\d+) steps", output)]
    assert len(steps) == 2 and steps[0] < 300 and steps[1] == 300, output
    assert int(redis_client.hgetall(CampaignKeys(campaign.id).stats)[b"samples"]) == sum(steps)
    assert not list((tmp_path / "spool").rglob("*.chunk"))
    assert MachineToken.objects.get(id=machine.id).client_version == info.version


def test_a_running_client_refuses_a_badly_signed_release_and_keeps_streaming(
    portal, old_wheel, django_user_model, redis_client, tmp_path
):
    unsign_portal_wheel()
    python, env = make_venv(tmp_path / "venv", old_wheel)
    campaign, machine, token = campaign_and_token(django_user_model, "live-refuse")
    proc, lines = start_running_client(python, env, portal, token, tmp_path)

    info = sign_portal_wheel(Ed25519PrivateKey.generate())  # the right sha256, the wrong signer
    output = finish(proc, lines)

    assert f"not updated, going on with client {OLD_VERSION}: refused client {info.version}" in output
    assert "not a SoulsAI release" in output
    assert "stopping to install" not in output
    assert installed_version(python, tmp_path) == OLD_VERSION
    assert int(redis_client.hgetall(CampaignKeys(campaign.id).stats)[b"samples"]) == 300

    # --no-auto-update: the relay's notice at hello is only said.
    proc, lines = start_running_client(python, env, portal, token, tmp_path, "--no-auto-update")
    output = finish(proc, lines)
    assert f"a newer client is available: {info.version} (this is {OLD_VERSION})" in output
    assert "refused" not in output and "stopping to install" not in output
    assert installed_version(python, tmp_path) == OLD_VERSION
