import numpy as np
import pytest
import torch

from client_app.policy import Policy, QNetworkSpec, q_values, save_model
from trainer.networks import build_q_network, export_params, load_params


@pytest.mark.parametrize("dueling", [True, False])
def test_state_dict_matches_the_spec(dueling):
    spec = QNetworkSpec(obs_dim=5, n_actions=3, hidden=(16, 8), dueling=dueling)
    net = build_q_network(spec)
    shapes = {name: tuple(t.shape) for name, t in net.state_dict().items()}
    assert shapes == spec.parameter_shapes()


@pytest.mark.parametrize("dueling", [True, False])
def test_torch_forward_equals_numpy_q_values(dueling):
    torch.manual_seed(0)
    spec = QNetworkSpec(obs_dim=6, n_actions=4, hidden=(32, 16), dueling=dueling)
    net = build_q_network(spec)
    obs = np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(obs)).numpy()
    np.testing.assert_allclose(q_values(spec, export_params(net), obs), expected, rtol=1e-5, atol=1e-5)


def test_published_file_round_trip():
    spec = QNetworkSpec(obs_dim=4, n_actions=2, hidden=(8,))
    net = build_q_network(spec)
    policy = Policy.from_bytes(save_model(spec, export_params(net), version=3, epsilon=0.5))
    assert (policy.spec, policy.version, policy.epsilon) == (spec, 3, 0.5)

    other = build_q_network(spec)
    load_params(other, policy.params)
    for name, value in net.state_dict().items():
        torch.testing.assert_close(other.state_dict()[name], value)


def test_load_params_refuses_a_foreign_architecture():
    net = build_q_network(QNetworkSpec(obs_dim=4, n_actions=2, hidden=(8,)))
    wrong = export_params(build_q_network(QNetworkSpec(obs_dim=4, n_actions=2, hidden=(9,))))
    with pytest.raises(RuntimeError):
        load_params(net, wrong)
