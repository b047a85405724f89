import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The learner runs on one CPU thread (SOULSAI_TORCH_THREADS); so do its tests, on a shared machine."""
    torch.set_num_threads(1)
