"""The client's evaluation queue: which checkpoint the next episode plays greedily, and how often."""

from __future__ import annotations

import numpy as np

from client_app import protocol as P
from client_app.evaluation import EvalEpisode, Evaluations
from client_app.policy import RandomPolicy


class _Fetcher:
    """Stands in for the evaluation's ModelFetcher: records requests, hands out what a test loads."""

    def __init__(self) -> None:
        self.requested: list[int] = []
        self.loaded: RandomPolicy | None = None

    def request(self, notice: P.ModelNotice) -> None:
        self.requested.append(notice.version)

    def take(self) -> RandomPolicy | None:
        loaded, self.loaded = self.loaded, None
        return loaded


def checkpoint(version: int) -> RandomPolicy:
    policy = RandomPolicy(2)
    policy.version = version
    return policy


def notice(version: int) -> P.ModelNotice:
    return P.ModelNotice(version=version, url=f"/models/{version}.safetensors", sha256="0" * 64)


def test_each_request_is_one_greedy_episode_of_that_version_once_it_is_loaded():
    evaluations = Evaluations(server_url="http://127.0.0.1:9", token="t", spool=lambda item_id, frame: True)
    evaluations.fetcher = fetcher = _Fetcher()
    evaluations.asked(notice(3))
    evaluations.asked(notice(3))
    assert fetcher.requested == [3, 3]
    assert evaluations.next_episode() is None, "nothing to play before the checkpoint arrives"

    fetcher.loaded = checkpoint(3)
    episodes = [evaluations.next_episode(), evaluations.next_episode(), evaluations.next_episode()]
    assert [e.policy.version if e else None for e in episodes] == [3, 3, None]


def test_requests_for_an_older_version_are_dropped_once_a_newer_checkpoint_is_loaded():
    evaluations = Evaluations(server_url="http://127.0.0.1:9", token="t", spool=lambda item_id, frame: True)
    evaluations.fetcher = fetcher = _Fetcher()
    evaluations.asked(notice(2))
    evaluations.asked(notice(4))
    fetcher.loaded = checkpoint(4)
    assert evaluations.next_episode().policy.version == 4
    assert evaluations.next_episode() is None  # v2's episode was superseded before its model came


def test_an_episode_plays_greedily_and_adds_up_its_return():
    episode = EvalEpisode(checkpoint(5))
    assert episode.act(np.zeros(4, np.float32), np.array([False, True])) == 1
    for reward in (1.0, 0.5, -0.25):
        episode.record(reward)
    assert (episode.episode_return, episode.length) == (1.25, 3)


def test_a_finished_episode_goes_into_the_spool_as_an_eval_message():
    spooled: list[tuple[str, bytes]] = []
    evaluations = Evaluations(
        server_url="http://127.0.0.1:9", token="t", spool=lambda item_id, frame: spooled.append((item_id, frame))
    )
    evaluations.store(EvalEpisode(checkpoint(6), episode_return=2.5, length=40), None, session="s1")
    evaluations.store(EvalEpisode(checkpoint(6), episode_return=-1.0, length=7), {"win": False}, session="s1")
    assert [item_id for item_id, _ in spooled] == ["s1-e1", "s1-e2"] and evaluations.episodes == 2
    first = P.decode_eval(P.unpack(spooled[0][1]))
    assert (first.id, first.model_version, first.episode_return, first.episode_length) == ("s1-e1", 6, 2.5, 40)
