import numpy as np

from client_app.policy import Policy, QNetworkSpec, save_model
from trainer.networks import build_q_network, export_params
from trainer.normalizer import RunningMeanStd


def test_running_statistics_equal_the_whole_data_merged_batch_by_batch():
    rng = np.random.default_rng(0)
    data = rng.normal(loc=[5.0, -3.0], scale=[2.0, 0.1], size=(1000, 2))
    stats = RunningMeanStd(2)
    for batch in np.array_split(data, 17):
        stats.update(batch)
    np.testing.assert_allclose(stats.mean, data.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(stats.var, data.var(axis=0), rtol=1e-10)
    assert stats.count == 1000


def test_statistics_travel_with_the_model_and_clients_apply_them():
    rng = np.random.default_rng(1)
    stats = RunningMeanStd(4, clip=5.0)
    stats.update(rng.normal(loc=100.0, scale=10.0, size=(500, 4)))
    spec = QNetworkSpec(obs_dim=4, n_actions=2, hidden=(8,))
    net = build_q_network(spec)
    policy = Policy.from_bytes(save_model(spec, export_params(net), version=2, obs_norm=stats.published()))
    assert policy.obs_norm is not None and policy.obs_norm.clip == 5.0
    obs = np.array([100.0, 110.0, 90.0, 1e6], np.float32)
    np.testing.assert_allclose(policy.obs_norm(obs), stats.normalize(obs), rtol=1e-6)
    assert policy.obs_norm(obs)[3] == 5.0  # clipped


def test_state_round_trip():
    stats = RunningMeanStd(3)
    stats.update(np.arange(12.0).reshape(4, 3))
    copy = RunningMeanStd(3)
    copy.load_state_dict(stats.state_dict())
    np.testing.assert_array_equal(copy.mean, stats.mean)
    assert copy.count == stats.count


def test_batches_are_normalised_with_the_statistics_as_they_are_now():
    """The learner reuses one frozen copy between ingests: new data or a loaded state replace it."""
    stats = RunningMeanStd(1)
    stats.update(np.array([[1.0], [3.0]]))  # mean 2, std 1
    assert stats.normalize(np.array([4.0]))[0] == np.float32(2.0)
    stats.update(np.array([[10.0], [12.0]]))  # mean 6.5, var 21.25
    assert stats.normalize(np.array([4.0]))[0] == np.float32((4.0 - 6.5) / np.sqrt(21.25 + 1e-8))
    other = RunningMeanStd(1)
    other.update(np.array([[0.0], [2.0]]))  # mean 1, std 1
    stats.load_state_dict(other.state_dict())
    assert stats.normalize(np.array([4.0]))[0] == np.float32(3.0)
