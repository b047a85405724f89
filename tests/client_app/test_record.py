"""``soulsai-client record``: fights played with a policy, written in tests/data's recording format.

The file must read exactly as tests/data/iudex_recorded_episodes.json does in the tests that use it
(test_iudex, test_masks, e2e/test_iudex_replay): the same keys, parallel lists, observation dicts
with the game's keys, the allowed actions of each observation, episode and step indices.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from client_app import iudex
from client_app import record as R
from client_app.masks import action_mask
from client_app.policy import QNetworkSpec, save_model

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "tests" / "data" / "iudex_recorded_episodes.json"


def check_format(data: dict) -> None:
    """What the tests reading tests/data rely on, checked on a recording."""
    reference = json.loads(REFERENCE.read_text())
    assert set(data) == set(reference)
    n = len(data["actions"])
    assert all(len(v) == n for v in data.values())
    assert (
        set(data["observations"][0])
        == set(reference["observations"][0])
        == set(iudex.observation_space().spaces)
    )
    for key, value in reference["observations"][0].items():
        assert type(data["observations"][0][key]) is type(value), key
    vectors = np.stack([iudex.encode(obs) for obs in data["observations"]])
    assert (vectors >= iudex.ENCODED_LOW).all() and (vectors <= iudex.ENCODED_HIGH).all()
    for obs, info in zip(data["observations"], data["infos"], strict=True):
        assert set(info) == {"allowed_actions"}
        animation = iudex.PLAYER_ANIMATIONS[obs["player_animation"]]
        allowed = iudex.allowed_actions(animation, obs["player_animation_duration"], obs["player_sp"])
        assert allowed == info["allowed_actions"]
    episodes = np.asarray(data["episodes"])
    for episode in np.unique(episodes):
        steps = np.flatnonzero(episodes == episode)
        assert [data["steps"][i] for i in steps] == list(range(len(steps)))
        assert data["dones"][steps[-1]] and not any(data["dones"][i] for i in steps[:-1])
        # As in the reference: entry i holds the observation after step i with the action and the
        # reward that led to it, and the reset comes first with action 0 and reward 0.
        assert data["actions"][steps[0]] == 0 and data["rewards"][steps[0]] == 0.0
        for i in steps[1:]:
            before, after = data["observations"][i - 1], data["observations"][i]
            assert abs(data["rewards"][i] - iudex.compute_reward(before, after)) < 1e-4


def taken(data: dict) -> list[tuple[dict, dict, int]]:
    """(observation, its info, the action taken from it) for every step of a recording."""
    return [
        (data["observations"][i - 1], data["infos"][i - 1], data["actions"][i])
        for i in range(1, len(data["actions"]))
        if data["steps"][i] > 0
    ]


def test_recording_the_arena_with_each_policy_writes_the_test_data_format(tmp_path, capsys):
    out = tmp_path / "allowed.json"
    assert (
        R.main(
            ["--env", iudex.ARENA_ID, "--episodes", "2", "--max-steps", "120", "--seed", "1", "-o", str(out)]
        )
        == 0
    )
    data = json.loads(out.read_text())
    check_format(data)
    assert sorted(set(data["episodes"])) == [0, 1] and len(data["actions"]) <= 242
    for _, info, action in taken(data):
        assert action_mask(info, iudex.N_ACTIONS)[action]  # "allowed" picks only allowed actions
    progress = capsys.readouterr().err
    assert "episode 1/2: 100 steps" in progress and "episode 2/2:" in progress and "done:" in progress

    scripted = tmp_path / "scripted.json"
    assert (
        R.main(
            ["--env", iudex.ARENA_ID, "--policy", "scripted", "--max-steps", "150", "-q", "-o", str(scripted)]
        )
        == 0
    )
    check_format(json.loads(scripted.read_text()))
    assert capsys.readouterr().err == ""

    still = tmp_path / "noop.json"
    assert (
        R.main(["--env", iudex.ARENA_ID, "--policy", "noop", "--max-steps", "40", "-q", "-o", str(still)])
        == 0
    )
    data = json.loads(still.read_text())
    check_format(data)
    assert set(data["actions"][1:]) == {iudex.NOOP}  # the player stands still: where Iudex's hits land


def test_recording_with_a_checkpoint_plays_it_greedily(tmp_path):
    spec = QNetworkSpec(obs_dim=iudex.ENCODED_DIM, n_actions=iudex.N_ACTIONS, hidden=(16,), dueling=False)
    rng = np.random.default_rng(0)
    params = {k: rng.normal(0, 0.3, size=s).astype(np.float32) for k, s in spec.parameter_shapes().items()}
    model = tmp_path / "iudex-v7.safetensors"
    model.write_bytes(save_model(spec, params, version=7, epsilon=0.0))
    out = tmp_path / "model.json"
    assert (
        R.main(["--env", iudex.ARENA_ID, "--policy", str(model), "--max-steps", "60", "-q", "-o", str(out)])
        == 0
    )
    data = json.loads(out.read_text())
    check_format(data)
    from client_app.policy import Policy

    policy = Policy.from_bytes(model.read_bytes())
    for obs, info, action in taken(data):
        assert action == policy.greedy(iudex.encode(obs), action_mask(info, iudex.N_ACTIONS))


def test_bad_options_and_a_missing_game_are_one_line_each(tmp_path, capsys):
    out = tmp_path / "x.json"
    assert R.main(["--policy", "nope", "-o", str(out)]) == 2
    assert (
        "error: --policy 'nope' is not one of random, allowed, scripted, noop nor a model file"
        in capsys.readouterr().err
    )
    assert R.main(["--env-kwargs", "[1]", "-o", str(out)]) == 2
    assert R.main(["--env", "SoulsGymIudexDemo-v0", "--env-kwargs", '{"phase": 2}', "-o", str(out)]) == 2
    assert "does not take 'phase'" in capsys.readouterr().err
    assert R.main(["-o", str(out)]) == 2  # SoulsGymIudex-v0 without the game
    err = capsys.readouterr().err
    assert err.startswith("error: SoulsGymIudex-v0") and "Traceback" not in err and not out.exists()


def test_record_help_through_the_command_line():
    result = subprocess.run([sys.executable, "-m", "client_app", "record", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0
    for word in ("--policy", "--episodes", "--output", "scripted", "tests/data/README.md", "exit codes"):
        assert word in result.stdout, word
