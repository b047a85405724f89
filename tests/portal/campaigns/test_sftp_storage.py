"""Model files on the network storage engine, a real sshd (harness/sftp.py): the learner's store
publishes onto its remote disk, the portal serves from there, and a checkpoint is read back checked."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import paramiko
import pytest
from django.core.files.storage import default_storage

from client_app.policy import Policy
from portal.campaigns.models import ModelVersion
from portal.training import store as store_module
from portal.training.store import CampaignStore, StorageUnavailable
from tests.portal.conftest import model_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def on_sftp(settings, sftp_server, tmp_path):
    """This process stores files on the SFTP server; its own media folder must stay empty."""
    settings.STORAGES = sftp_server.storages()
    settings.MEDIA_ROOT = str(tmp_path / "local-media")
    return sftp_server


def local_files(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "local-media").rglob("*") if p.is_file()]


def publish_checkpoint(campaign, version: int, state: bytes = b"learner state") -> tuple[ModelVersion, bytes]:
    """Publish through the learner's store; the row and the weights it was given."""
    weights = model_bytes(version)
    CampaignStore().model_publish(
        campaign.id,
        version=version,
        weights=weights,
        state=state,
        is_checkpoint=True,
        samples_total=100 * version,
        updates_total=10 * version,
    )
    return ModelVersion.objects.get(campaign=campaign, version=version), weights


def test_the_learners_store_publishes_onto_the_remote_disk(on_sftp, cartpole_campaign, tmp_path):
    model, weights = publish_checkpoint(cartpole_campaign, 1, state=b"state v1")
    # What the sshd's folder holds is all there is: both files, whole, no partial upload left.
    assert on_sftp.files() == sorted([model.weights.name, model.state.name])
    assert model.weights.name == "models/cartpole-test/v1.safetensors"
    assert (on_sftp.root / model.weights.name).read_bytes() == weights
    assert (on_sftp.root / model.state.name).read_bytes() == b"state v1"
    assert model.sha256 == hashlib.sha256(weights).hexdigest() and model.size_bytes == len(weights)
    assert local_files(tmp_path) == []


def test_the_model_file_is_streamed_from_the_remote_disk(client, on_sftp, cartpole_campaign, publish):
    model = publish(cartpole_campaign, 1)
    response = client.get(model.get_absolute_url())
    assert response.status_code == 200
    data = b"".join(response.streaming_content)
    assert data == (on_sftp.root / model.weights.name).read_bytes()
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response["X-Content-SHA256"] == model.sha256 == hashlib.sha256(data).hexdigest()
    assert int(response["Content-Length"]) == len(data)
    assert Policy.from_bytes(data).version == 1
    # Gone from the remote disk (pruned), the URL is a 404 on every host.
    (on_sftp.root / model.weights.name).unlink()
    assert client.get(model.get_absolute_url()).status_code == 404


def test_a_checkpoint_is_read_back_and_checked_by_sha256(on_sftp, cartpole_campaign):
    model, weights = publish_checkpoint(cartpole_campaign, 2)
    store = CampaignStore()
    checkpoint = store.checkpoint_read(cartpole_campaign.id, 2)
    assert (checkpoint.weights, checkpoint.state) == (weights, b"learner state")

    remote = on_sftp.root / model.weights.name
    remote.write_bytes(remote.read_bytes()[:-1] + b"\0")  # damaged on the server
    with pytest.raises(ValueError, match="sha256 differs"):
        store.checkpoint_read(cartpole_campaign.id, 2)
    remote.unlink()  # lost: the learner falls back to an older checkpoint (an OSError)
    with pytest.raises(FileNotFoundError):
        store.checkpoint_read(cartpole_campaign.id, 2)


def test_a_storage_server_that_is_down_is_not_a_lost_checkpoint(on_sftp, cartpole_campaign, monkeypatch):
    publish_checkpoint(cartpole_campaign, 1)
    monkeypatch.setattr(store_module, "STORAGE_RETRY_WAITS", (0.05,))
    on_sftp.stop()
    default_storage.close()  # the connection this process held dies with the server anyway
    # Not an OSError: the learner must stop (and be restarted) rather than start afresh without it.
    with pytest.raises(StorageUnavailable, match="cannot read models/cartpole-test/v1.safetensors") as caught:
        CampaignStore().checkpoint_read(cartpole_campaign.id, 1)
    assert not isinstance(caught.value, OSError)


def test_a_server_with_another_host_key_is_refused(settings, sftp_server, cartpole_campaign, tmp_path):
    impostor = tmp_path / "impostor_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)], check=True)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sftp_server.port} {Path(f'{impostor}.pub').read_text().strip()}\n")
    storages = sftp_server.storages()
    storages["default"]["OPTIONS"]["known_host_file"] = str(known_hosts)
    settings.STORAGES = storages
    with pytest.raises(paramiko.BadHostKeyException):
        publish_checkpoint(cartpole_campaign, 1)
    assert sftp_server.files() == [] and not ModelVersion.objects.filter(campaign=cartpole_campaign).exists()
