"""No shared folder between roles: model files, checkpoints and the client wheel travel through the
SFTP storage engine (a real sshd, harness/sftp.py), and web hosts with var folders of their own serve
the same bytes with the same sha256."""

from __future__ import annotations

import hashlib
import logging
import shutil
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from email.message import Message
from pathlib import Path

import pytest

from portal.downloads import services as downloads
from portal.training.runner import learner_run
from portal.training.store import CampaignStore
from tests.conftest import start_asgi
from tests.portal.conftest import model_bytes
from tests.trainer.helpers import push_chunks
from tests.trainer.test_learner import SMALL, ingested, set_status_when, versions
from trainer.keys import CampaignKeys

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Message, bytes]:
    """Status, headers (case-insensitive) and body of a GET."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def web_host(sftp_server, tmp_path: Path, name: str):
    """An ASGI server as another web host runs it: its own var folder, the storage over the network."""
    var = tmp_path / f"{name}-var"
    return start_asgi(tmp_path, name=name, env={**sftp_server.env(), "SOULSAI_VAR_DIR": str(var)})


def test_a_web_host_with_its_own_var_folder_serves_what_the_learner_published(
    settings, sftp_server, cartpole_campaign, tmp_path
):
    settings.STORAGES = sftp_server.storages()  # this process is the learner host
    weights = model_bytes(1)
    published = CampaignStore().model_publish(
        cartpole_campaign.id, version=1, weights=weights, state=b"state",
        is_checkpoint=True, samples_total=10, updates_total=5,
    )  # fmt: skip
    assert "models/cartpole-test/v1.safetensors" in sftp_server.files()

    web = web_host(sftp_server, tmp_path, "web-b")
    try:
        status, headers, data = get(web.url + published["url"])
        assert status == 200
        assert data == weights and hashlib.sha256(data).hexdigest() == published["sha256"]
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert headers["X-Content-SHA256"] == published["sha256"] and int(headers["Content-Length"]) == len(
            data
        )
        status, _, _ = get(web.url + published["url"], {"If-None-Match": f'"{published["sha256"]}"'})
        assert status == 304
        # Many clients at once: the host's one SFTP connection serves every thread's reads intact.
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: get(web.url + published["url"]), range(32)))
        assert all(status == 200 and body == weights for status, _, body in answers)
        # Sent chunk by chunk as read from storage, not gathered whole first (Django warns when it must).
        assert "synchronous iterators" not in web.output()
    finally:
        web.stop()
    assert not (tmp_path / "web-b-var" / "media" / "models").exists()  # nothing was copied to the host


def test_the_wheel_is_built_once_and_every_web_host_serves_the_same_file(
    settings, sftp_server, tmp_path, monkeypatch
):
    settings.STORAGES = sftp_server.storages()
    wheel = downloads.client_wheel_build()
    assert sorted(sftp_server.files()) == sorted([
        f"client-wheel/{wheel.version}/{wheel.sha256}/{wheel.filename}",
        f"client-wheel/{wheel.version}/manifest.json",
    ])  # fmt: skip
    stored = (sftp_server.root / wheel.name).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == wheel.sha256

    # Built again (another host's deployment, `make run` restarting): nothing is built.
    def no_build(*args, **kwargs):
        raise AssertionError("pip ran although the storage holds this version's wheel")

    monkeypatch.setattr(downloads, "_pip_wheel", no_build)
    assert downloads.client_wheel_build() == wheel

    hosts = [web_host(sftp_server, tmp_path, name) for name in ("web-a", "web-b")]
    try:
        for web in hosts:
            status, _, page = get(web.url + "/download/")
            assert status == 200
            html = page.decode()
            assert wheel.sha256 in html and wheel.filename in html and wheel.version in html
            status, headers, data = get(f"{web.url}/download/{wheel.filename}")
            assert status == 200 and data == stored
            assert headers["X-Content-SHA256"] == wheel.sha256
            assert not list((tmp_path / f"{web.name}-var").rglob("*.whl"))  # no web host built one
    finally:
        for web in hosts:
            web.stop()


def test_a_learner_on_another_host_resumes_from_the_checkpoint_on_the_sftp_server(
    settings, sftp_server, cartpole_campaign, redis_client, tmp_path, caplog
):
    settings.STORAGES = sftp_server.storages()
    settings.MEDIA_ROOT = str(tmp_path / "host-a-media")
    cartpole_campaign.hyperparams = SMALL
    cartpole_campaign.save(update_fields=["hyperparams"])
    keys = CampaignKeys(cartpole_campaign.id)

    first = push_chunks(redis_client, keys.stream, 8, 24, seed=0)
    with set_status_when(keys, ingested(first, updates=65)):
        assert learner_run(campaign_id=cartpole_campaign.id, max_seconds=60) == "stopped"
    checkpoint = versions(cartpole_campaign)[-1]
    assert checkpoint.is_checkpoint and checkpoint.updates_total == 65
    assert checkpoint.state.name in sftp_server.files()
    shutil.rmtree(tmp_path / "host-a-media", ignore_errors=True)  # the first host is gone

    settings.MEDIA_ROOT = str(tmp_path / "host-b-media")  # another host: nothing of the first on disk
    redis_client.set(keys.status, "running")
    second = push_chunks(redis_client, keys.stream, 8, 24, seed=100)
    with (
        caplog.at_level(logging.INFO, logger="trainer"),
        set_status_when(keys, ingested(first + second, updates=130)),
    ):
        assert learner_run(campaign_id=cartpole_campaign.id, max_seconds=60) == "stopped"
    assert any(f"resumed from checkpoint v{checkpoint.version}" in r.getMessage() for r in caplog.records)
    later = [m for m in versions(cartpole_campaign) if m.version > checkpoint.version]
    assert later and later[-1].updates_total == 130  # counters went on from the checkpoint's 65
    assert all(m.weights.name in sftp_server.files() for m in later)
    assert not (tmp_path / "host-b-media").exists()
