"""Data nobody can poison unnoticed (issue 18), with real processes: ASGI server, Celery worker with
beat (learner and roll-ups), Redis, and five real clients on one CartPole campaign.

Four play honestly; one (tests/e2e/poisoned_client.py) ignores its policy and always pushes left
while reporting the policy's actions: well-formed chunks within bounds whose actions do not match
their observations. The roll-up flags it from the learner's per-machine statistics, flags no honest
machine, and voiding it removes every one of its samples from the learner's replay buffer (read from
the checkpoint the learner writes after the void, which keeps the buffer and its machine ids).
"""

from __future__ import annotations

import io
import sys
import time

import pytest
import torch

from harness.processes import LiveProcess
from portal.campaigns.models import Campaign
from portal.campaigns.services import campaign_create, campaign_launch
from portal.core.processes import client_argv, client_env
from portal.core.redis import get_redis
from portal.machines.models import MachineToken
from portal.machines.services import token_create, token_void
from tests.conftest import FAST_DQN, process_env, start_celery_worker, start_client, wait_for
from trainer.keys import CampaignKeys
from trainer.machine_stats import outlier_scores, parse_sums

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HYPERPARAMS = {**FAST_DQN, "eval_every_samples": 0, "checkpoint_replay": True, "buffer_size": 50_000}
SPS = "40"  # steps per second per client: episodes come slowly enough to count them at the flag


def machine_episodes(keys: CampaignKeys, token: MachineToken) -> int:
    return int(get_redis().hget(keys.machine_episodes, token.pk) or 0)


def replay_machines(campaign: Campaign, after_version: int):
    """The machine ids of the replay buffer in the newest checkpoint after ``after_version``, or None."""
    checkpoint = campaign.model_versions.filter(is_checkpoint=True, version__gt=after_version).order_by("-version").first()
    if checkpoint is None or not checkpoint.state:
        return None
    with checkpoint.state.open("rb") as f:  # the server's own file
        state = torch.load(io.BytesIO(f.read()), weights_only=True)
    return state["agent"]["replay"]["machines"].numpy()


def honest_scores(keys: CampaignKeys, tokens: list[MachineToken]) -> list[float]:
    """The honest machines' outlier scores as the roll-up computes them now (a figure for the log)."""
    scores = outlier_scores(parse_sums(get_redis().hgetall(keys.machine_stats)))
    return [round(scores[t.pk].score, 2) for t in tokens if t.pk in scores]


def test_a_poisoning_client_is_flagged_within_50_episodes_and_voiding_it_removes_its_samples(
    asgi_server, django_user_model, tmp_path, monkeypatch
):
    monkeypatch.setenv("SOULSAI_OUTLIER_EVERY", "2")  # as often as the stats roll-up
    worker = start_celery_worker(tmp_path)
    clients = []
    try:
        user = django_user_model.objects.create_user("volunteer", "v@example.com", "pw-12345678")
        campaign = campaign_create(
            slug="poison", name="Poison", env_id="CartPole-v1", hyperparams=HYPERPARAMS, chunk_steps=32
        )
        campaign_launch(campaign=campaign)
        keys = CampaignKeys(campaign.id)
        honest = [token_create(user=user, campaign=campaign, name=f"honest{i}") for i in range(4)]
        poisoned, poisoned_raw = token_create(user=user, campaign=campaign, name="poisoned")
        for i, (_token, raw) in enumerate(honest):
            clients.append(start_client(asgi_server.url, raw, tmp_path / f"spool{i}", tmp_path, "--max-sps", SPS,
                                        "--seed", str(i), name=f"honest{i}"))  # fmt: skip
        argv = client_argv(server=asgi_server.url, spool_dir=tmp_path / "spool-p", extra=("--max-sps", SPS))
        argv = [sys.executable, "-m", "tests.e2e.poisoned_client", *argv[3:]]  # from the repository root
        clients.append(LiveProcess("poisoned", argv, client_env(process_env(), token=poisoned_raw), tmp_path))
        procs = (*clients, worker, asgi_server)

        start = time.monotonic()
        wait_for(lambda: MachineToken.objects.get(pk=poisoned.pk).flagged_at is not None, 120,
                 "the poisoned machine to be flagged", *procs)  # fmt: skip
        flagged_after = machine_episodes(keys, poisoned)
        poisoned.refresh_from_db()
        evidence = poisoned.outlier_evidence
        print(f"flagged after {flagged_after} of its episodes, {time.monotonic() - start:.1f} s; evidence {evidence}")
        assert flagged_after <= 50, evidence
        # The run goes on until it sent 50 episodes: no honest machine is flagged meanwhile.
        wait_for(lambda: machine_episodes(keys, poisoned) >= 50, 60, "50 poisoned episodes", *procs)
        wait_for(lambda: all(machine_episodes(keys, t) >= 10 for t, _ in honest), 60, "honest episodes", *procs)
        honest_flagged = list(MachineToken.objects.filter(pk__in=[t.pk for t, _ in honest]).flagged())
        assert honest_flagged == [], [t.outlier_evidence for t in honest_flagged]
        print(f"honest scores {honest_scores(keys, [t for t, _ in honest])}")

        # Before the void its samples are in the learner's buffer; after it, none are.
        (before,) = wait_for(
            lambda: (m := replay_machines(campaign, 0)) is not None and (m == poisoned.pk).sum() > 0 and (m,),
            60, "a checkpoint with poisoned samples", *procs,
        )  # fmt: skip
        assert (before == poisoned.pk).sum() > 0
        lost = token_void(token=poisoned)
        assert lost.samples > 0
        removed = wait_for(lambda: get_redis().hget(keys.voided_removed, poisoned.pk), 30, "the learner's void", *procs)
        print(f"void: {lost}, the learner removed {int(removed)} samples")
        voided_at = max(campaign.model_versions.values_list("version", flat=True))
        (after,) = wait_for(lambda: (m := replay_machines(campaign, voided_at)) is not None and (m,), 60,
                            "a checkpoint after the void", *procs)  # fmt: skip
        assert (after == poisoned.pk).sum() == 0
        assert all((after == t.pk).sum() > 0 for t, _ in honest)
        print(f"took {time.monotonic() - start:.1f} s")
    finally:
        for proc in clients:
            proc.stop()
        worker.stop()


def test_honest_clients_alone_are_not_flagged(asgi_server, django_user_model, tmp_path, monkeypatch):
    """Five honest clients for about as long as the poisoned run: nobody is flagged."""
    monkeypatch.setenv("SOULSAI_OUTLIER_EVERY", "2")
    worker = start_celery_worker(tmp_path)
    clients = []
    try:
        user = django_user_model.objects.create_user("volunteer", "v@example.com", "pw-12345678")
        campaign = campaign_create(
            slug="honest", name="Honest", env_id="CartPole-v1", hyperparams=HYPERPARAMS, chunk_steps=32
        )
        campaign_launch(campaign=campaign)
        keys = CampaignKeys(campaign.id)
        tokens = [token_create(user=user, campaign=campaign, name=f"honest{i}") for i in range(5)]
        for i, (_token, raw) in enumerate(tokens):
            clients.append(start_client(asgi_server.url, raw, tmp_path / f"spool{i}", tmp_path, "--max-sps", SPS,
                                        "--seed", str(i), name=f"honest{i}"))  # fmt: skip
        procs = (*clients, worker, asgi_server)
        # Every machine scored (10+ episodes seen by the learner) and 25+ episodes sent: as long as the
        # poisoned run, whose honest clients had about that many when it ended.
        wait_for(lambda: len(honest_scores(keys, [t for t, _ in tokens])) == 5, 120, "every machine scored", *procs)
        wait_for(lambda: all(machine_episodes(keys, t) >= 25 for t, _ in tokens), 120, "25 episodes each", *procs)
        scores = honest_scores(keys, [t for t, _ in tokens])
        print(f"honest-only scores {scores}")
        flagged = list(MachineToken.objects.filter(campaign=campaign).flagged())
        assert flagged == [], [t.outlier_evidence for t in flagged]
    finally:
        for proc in clients:
            proc.stop()
        worker.stop()
