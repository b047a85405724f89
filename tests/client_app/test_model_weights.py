"""A model whose weights are not finite is never played: the client says why and keeps its policy.

Real files over real HTTP: the scripted relay serves them from its own port, as the portal does.
"""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from client_app.fetcher import ModelFetcher, ModelNotice
from client_app.policy import PolicyNetworkSpec, save_model
from harness import wait_for
from tests.client_app.conftest import cartpole_model
from tests.client_app.test_cli import run_client


def poisoned(data: bytes, name: str, value: float) -> bytes:
    """The same model file with one value of parameter ``name`` replaced (NaN, inf...)."""
    tensors = st_load(data)
    tensors[name] = tensors[name].copy()
    tensors[name].flat[0] = value
    (header_len,) = struct.unpack("<Q", data[:8])
    metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__")
    return st_save(tensors, metadata=metadata)


def ppo_model(version: int) -> bytes:
    spec = PolicyNetworkSpec(obs_dim=4, n_actions=2, hidden=(8,))
    rng = np.random.default_rng(version)
    params = {n: rng.normal(0, 0.5, size=s).astype(np.float32) for n, s in spec.parameter_shapes().items()}
    return save_model(spec, params, version=version)


def test_a_model_with_nan_weights_is_refused_and_the_client_keeps_playing_its_model(
    relay, tmp_path, capsys, caplog
):
    good, bad = cartpole_model(3), poisoned(cartpole_model(4, seed=4), "layers.0.weight", float("nan"))
    for version, data in ((3, good), (4, bad)):
        relay.files[f"/models/{version}.safetensors"] = data

    async def publish(server, ws, stored):
        if stored == 1:
            await server.publish_model(ws, 3, "/models/3.safetensors", hashlib.sha256(good).hexdigest())
        if stored == 10:
            await server.publish_model(ws, 4, "/models/4.safetensors", hashlib.sha256(bad).hexdigest())

    relay.after_chunk = publish
    assert run_client(relay, tmp_path, "--max-steps", "900", "--max-sps", "600") == 0

    assert [path for path, _ in relay.downloads] == ["/models/3.safetensors", "/models/4.safetensors"]
    versions = [chunk.model_version for chunk in relay.stored.values()]
    assert versions[-1] == 3 and 4 not in versions  # it went on with v3
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(
        "model v4 cannot be loaded: parameter layers.0.weight holds NaN or infinite values" in w for w in warnings
    )
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("make", "name", "value"),
    [
        (lambda: ppo_model(4), "head.weight", float("nan")),  # sampling from NaN logits crashed the client
        (lambda: ppo_model(4), "layers.0.bias", float("inf")),
        (lambda: cartpole_model(4), "advantage.bias", float("-inf")),
        # finite, but every Q-value overflows to infinity: as broken as NaN
        (lambda: cartpole_model(4), "layers.0.weight", 3e38),
    ],
    ids=["pi-nan", "pi-inf", "q-minus-inf", "q-overflowing"],
)
def test_non_finite_weights_served_over_http_are_refused(relay, make, name, value):
    data = poisoned(make(), name, value)
    relay.files["/models/4.safetensors"] = data
    fetcher = ModelFetcher(server_url=relay.url, token="sai_secret")
    fetcher.start()
    try:
        fetcher.request(ModelNotice(4, "/models/4.safetensors", hashlib.sha256(data).hexdigest()))
        wait_for(lambda: fetcher.failures, 10, "the fetcher to refuse the model", interval=0.01)
    finally:
        fetcher.stop()
    assert fetcher.loaded_version == 0 and fetcher.take() is None
    assert f"parameter {name} holds NaN or infinite values" in fetcher.last_error
