"""Which device a learner takes: CUDA where there is one, a clear refusal where it was asked for and
is missing, the CPU otherwise; and batches that stay plain NumPy arrays on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from client_app.protocol import Chunk
from trainer.config import DQNConfig
from trainer.learner import DeviceUnavailable, LearnerSettings, device_name, learner_device
from trainer.replay import replay_buffer_for

NO_CUDA = not torch.cuda.is_available()


@pytest.mark.skipif(not NO_CUDA, reason="this host has a CUDA device: cuda is no error here")
def test_cuda_asked_for_on_a_host_without_it_is_a_clear_error():
    with pytest.raises(DeviceUnavailable) as refused:
        learner_device(LearnerSettings(device="cuda"))
    message = str(refused.value)
    assert message.startswith(
        "SOULSAI_DEVICE=cuda but this host has no CUDA device (torch.cuda.is_available() is False): "
    )
    assert "SOULSAI_DEVICE=auto" in message  # what to do about it


@pytest.mark.skipif(not NO_CUDA, reason="on a CUDA host auto takes the GPU")
def test_auto_and_cpu_take_the_cpu_with_the_threads_they_are_given():
    threads = torch.get_num_threads()
    try:
        assert learner_device(LearnerSettings(device="auto", torch_threads=2)) == torch.device("cpu")
        assert torch.get_num_threads() == 2
        assert learner_device(LearnerSettings(device="cpu")) == torch.device("cpu")
        assert device_name(torch.device("cpu")) == "cpu"
    finally:
        torch.set_num_threads(threads)


def test_an_unknown_device_is_refused():
    with pytest.raises(DeviceUnavailable, match="SOULSAI_DEVICE='gpu' is not one of auto, cpu, cuda"):
        learner_device(LearnerSettings(device="gpu"))


def test_on_the_cpu_a_sampled_batch_is_plain_numpy_arrays():
    config = DQNConfig(buffer_size=64, n_step=1)
    buffer = replay_buffer_for(config, obs_dim=2, n_actions=2)
    assert buffer.pin_memory is False
    obs = np.arange(10, dtype=np.float32).reshape(5, 2)
    buffer.add_chunk(
        Chunk(
            id="c", model_version=0, obs=obs, actions=np.array([0, 1, 0, 1]), rewards=np.ones(4, np.float32),
            terminated=False, truncated=False,
        )
    )  # fmt: skip
    batch = buffer.sample(8, np.random.default_rng(0))
    assert all(isinstance(v, np.ndarray) for v in batch if v is not None)
    assert batch.obs.dtype == np.float32 and batch.obs.shape == (8, 2)

# On a CUDA host, bench/gpu_check.py checks that batches are pinned and the learner trains there.
