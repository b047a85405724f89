"""The runner's spool use: what it was told to keep, it keeps, even while the server is away."""

from __future__ import annotations

import threading

from client_app.chunker import new_session_id
from client_app.evaluation import EvalEpisode
from client_app.policy import RandomPolicy
from client_app.protocol import decode_eval, unpack
from client_app.runner import RunConfig, Runner
from client_app.spool import Spool


def test_an_evaluation_result_waits_for_room_in_a_full_spool_instead_of_being_dropped(tmp_path):
    # Dropped, the learner would wait for this checkpoint's evaluation until its time-out.
    runner = Runner(RunConfig(server_url="http://127.0.0.1:9", token="t", machine="m"))
    runner.spool = Spool(tmp_path, max_chunks=1)
    runner.spool.add("waiting-chunk", b"frame")  # the server is away: the spool is full
    policy = RandomPolicy(2)
    policy.version = 7
    outcome = {"win": True, "boss_hp": 0.0, "player_hp": 0.25}
    episode = EvalEpisode(policy, episode_return=1.5, length=640)
    stored = threading.Thread(
        target=runner.evaluations.store, args=(episode, outcome), kwargs={"session": new_session_id()}
    )
    stored.start()
    stored.join(0.6)
    assert stored.is_alive(), "the result was given up while the spool was full"
    runner.spool.ack("waiting-chunk")  # the server came back and took the chunk
    stored.join(5)
    assert not stored.is_alive()
    [result_id] = runner.spool.pending()
    result = decode_eval(unpack(runner.spool.read(result_id)))
    assert (result.model_version, result.episode_return, result.episode_length) == (7, 1.5, 640)
    assert result.outcome == outcome
