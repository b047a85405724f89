"""Model weights by version: immutable, cacheable, checked by sha256; 404 once gone."""

from __future__ import annotations

import hashlib

import pytest

from client_app.policy import Policy

pytestmark = pytest.mark.django_db


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_model_file_headers_and_bytes(client, cartpole_campaign, publish):
    model = publish(cartpole_campaign, 1)
    assert model.get_absolute_url() == "/campaigns/cartpole-test/models/1.safetensors"

    response = client.get(model.get_absolute_url())
    assert response.status_code == 200
    data = body(response)
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response["ETag"].strip('"') == model.sha256
    assert response["X-Content-SHA256"] == model.sha256 == hashlib.sha256(data).hexdigest()
    assert int(response["Content-Length"]) == len(data) == model.size_bytes
    assert Policy.from_bytes(data).version == 1  # what a client does with it


def test_model_file_revalidation_answers_304(client, cartpole_campaign, publish):
    model = publish(cartpole_campaign, 1)
    response = client.get(model.get_absolute_url(), headers={"If-None-Match": f'"{model.sha256}"'})
    assert response.status_code == 304
    assert response["ETag"] == f'"{model.sha256}"'


def test_unknown_version_or_campaign_is_404(client, cartpole_campaign, publish):
    publish(cartpole_campaign, 1)
    assert client.get("/campaigns/cartpole-test/models/2.safetensors").status_code == 404
    assert client.get("/campaigns/nope/models/1.safetensors").status_code == 404


def test_pruned_file_is_404(client, cartpole_campaign, publish):
    model = publish(cartpole_campaign, 1)
    model.weights.storage.delete(model.weights.name)
    assert client.get(model.get_absolute_url()).status_code == 404


def test_model_files_are_read_only(client, cartpole_campaign, publish):
    model = publish(cartpole_campaign, 1)
    assert client.post(model.get_absolute_url()).status_code == 405
