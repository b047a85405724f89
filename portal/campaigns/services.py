"""Campaign lifecycle and model publication: the write side of the campaigns app."""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from client_app.envs import SUPPORTED_ENV_IDS
from portal.campaigns.models import Campaign, ModelVersion
from portal.core.redis import get_redis
from portal.machines.models import MachineToken
from portal.relay.fanout import MIN_CLIENT, MODEL, STATUS, notice_publish
from portal.training.services import learner_ensure
from trainer.config import config_for
from trainer.gating import Evaluated, best_of, held_back_reason
from trainer.keys import CampaignKeys

log = logging.getLogger(__name__)

# The one allow-list of env ids, shipped with the client and checked before gymnasium sees an id.
SUPPORTED_ENVS = SUPPORTED_ENV_IDS


def env_spaces(env_id: str, env_kwargs: dict | None = None) -> tuple[dict, dict]:
    """The observation and action space specs a campaign declares, worked out once on the server.

    SoulsGym fights are declared without the game (the server never has it): their specs are the
    Iudex encoder's, the same the client sends (client_app.envs.declared_spaces).
    """
    from client_app.envs import declared_spaces

    try:
        return declared_spaces(env_id, env_kwargs or {})
    except Exception as exc:  # gymnasium raises many types for an unknown or broken env
        raise ValidationError(f"cannot create environment {env_id!r}: {_for_staff(str(exc))}") from exc


def _for_staff(message: str) -> str:
    """client_app's env errors speak to volunteers ('pip install soulsai-client[box2d]', 'download the
    current client'); on the launch form the one to act is the operator of this server."""
    if "needs extra packages" in message:
        return (
            "the server's Python lacks this environment's packages: install them on every web host "
            f"(requirements.txt), then launch again ({message})"
        )
    if "download the current client" in message:
        return f"this server's client_app does not know it: update the server first ({message})"
    if "does not take the settings" in message:
        return f"its settings (env_kwargs) are not ones it takes: fix them ({message})"
    return message


def default_chunk_steps(*, env_id: str, algorithm: str) -> int:
    """Steps per chunk when the campaign does not say.

    PPO bootstraps its advantages from the critic wherever a chunk ends mid-episode; on the fast
    gymnasium envs whole episodes fit in 1024 steps, and LunarLander-v2 reached 200 in 615k env steps
    with 1024-step chunks against 909k with 128 (bench/learning.py, Nov 2026). The real game makes 10
    steps a second, so its chunks stay short (128 steps = 13 s of play before the learner sees them).
    """
    from client_app.envs import is_iudex, is_soulsgym

    if algorithm == Campaign.Algorithm.PPO and not (is_soulsgym(env_id) or is_iudex(env_id)):
        return 1024
    return 128


def campaign_create(
    *,
    slug: str,
    name: str,
    env_id: str,
    algorithm: str = Campaign.Algorithm.DQN,
    hyperparams: dict | None = None,
    env_kwargs: dict | None = None,
    description: str = "",
    chunk_steps: int | None = None,
    min_client_version: str = "0.1.0",
    max_policy_lag: int = 0,
) -> Campaign:
    """A draft campaign with its spaces resolved and its hyperparameters validated."""
    try:
        config_for(env_id, hyperparams or {}, algorithm=algorithm)
    except ValueError as exc:
        raise ValidationError({"hyperparams": str(exc)}) from exc
    observation_space, action_space = env_spaces(env_id, env_kwargs)
    campaign = Campaign(
        slug=slug,
        name=name,
        env_id=env_id,
        env_kwargs=env_kwargs or {},
        algorithm=algorithm,
        hyperparams=hyperparams or {},
        description=description,
        chunk_steps=chunk_steps or default_chunk_steps(env_id=env_id, algorithm=algorithm),
        min_client_version=min_client_version,
        max_policy_lag=max_policy_lag,
        observation_space=observation_space,
        action_space=action_space,
    )
    campaign.full_clean()
    campaign.save()
    return campaign


def _set_status(campaign: Campaign, status: str) -> None:
    campaign.status = status
    fields = ["status", "updated"]
    if status == Campaign.Status.RUNNING and campaign.launched_at is None:
        campaign.launched_at = timezone.now()
        fields.append("launched_at")
    if status == Campaign.Status.STOPPED:
        campaign.stopped_at = timezone.now()
        fields.append("stopped_at")
    campaign.save(update_fields=fields)
    campaign_id = campaign.id
    transaction.on_commit(lambda: _announce_status(campaign_id, status))


def campaign_redis_sync(*, campaign: Campaign) -> None:
    """Write the campaign's status and current model into Redis, where the relay and learner read them.

    Called after every status change, and by the supervisor beat task to repair Redis after a restart.
    """
    keys = CampaignKeys(campaign.id)
    client = get_redis()
    client.set(keys.status, campaign.status)
    # A Redis that lost its data (restarted without persistence) counts on from the database's figures.
    client.hsetnx(keys.stats, "samples", campaign.samples_total)
    client.hsetnx(keys.stats, "episodes", campaign.episodes_total)
    # Revocations and flags live in the database too: a Redis that lost them gets them back.
    tokens = MachineToken.objects.filter(campaign=campaign)
    revoked = list(tokens.filter(revoked_at__isnull=False).values_list("pk", flat=True))
    if revoked:
        client.sadd(keys.revoked, *revoked)
    for pk, flagged_at in tokens.flagged().values_list("pk", "flagged_at"):
        client.hsetnx(keys.flagged, pk, int(flagged_at.timestamp()))
    # And voids: the learner must keep dropping a voided machine's samples after a restart.
    for pk, voided_at in tokens.filter(voided_at__isnull=False).values_list("pk", "voided_at"):
        client.hsetnx(keys.voided, pk, int(voided_at.timestamp()))
    if campaign.model_version and not client.exists(keys.model):
        model = campaign.model_versions.filter(version=campaign.model_version).first()
        if model is not None:
            client.hset(keys.model, mapping=model.notice())
    # The roll-out gate's choice too: reconnecting clients keep starting with the best checkpoint.
    if campaign.agent_version and not client.exists(keys.agent):
        agent = campaign.model_versions.filter(version=campaign.agent_version).first()
        if agent is not None:
            client.hset(keys.agent, mapping=agent.notice())


def campaign_min_client_announce(*, campaign: Campaign) -> None:
    """Tell the campaign's connected clients its minimum client version (after a change): the relay
    closes those older with upgrade_required, as it refuses them at hello, and they update themselves."""
    notice_publish(kind=MIN_CLIENT, campaign_id=campaign.id, version=campaign.min_client_version)


def _announce_status(campaign_id: int, status: str) -> None:
    get_redis().set(CampaignKeys(campaign_id).status, status)
    notice_publish(kind=STATUS, campaign_id=campaign_id, status=status)
    if status == Campaign.Status.RUNNING:
        learner_ensure(campaign_id=campaign_id)


_TRANSITIONS = {
    "launch": ({Campaign.Status.DRAFT}, Campaign.Status.RUNNING),
    "pause": ({Campaign.Status.RUNNING}, Campaign.Status.PAUSED),
    "resume": ({Campaign.Status.PAUSED}, Campaign.Status.RUNNING),
    "stop": ({Campaign.Status.RUNNING, Campaign.Status.PAUSED, Campaign.Status.DRAFT}, Campaign.Status.STOPPED),
}


@transaction.atomic
def _transition(campaign: Campaign, action: str) -> Campaign:
    allowed_from, target = _TRANSITIONS[action]
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.status not in allowed_from:
        raise ValidationError(f"cannot {action} campaign '{campaign.slug}': it is {campaign.get_status_display().lower()}")
    _set_status(campaign, target)
    return campaign


def campaign_launch(*, campaign: Campaign) -> Campaign:
    """Draft -> running: clients may connect, and a learner is started."""
    return _transition(campaign, "launch")


PAUSE_REASON_MAX = 200  # characters; the campaign page and every client show it


def campaign_pause(*, campaign: Campaign, reason: str = "") -> Campaign:
    """Running -> paused: the learner checkpoints and exits, clients wait; ``reason`` says why (optional)."""
    reason = " ".join((reason or "").split())
    if len(reason) > PAUSE_REASON_MAX:
        raise ValidationError(f"keep the reason under {PAUSE_REASON_MAX} characters (it has {len(reason)})")
    with transaction.atomic():
        campaign = _transition(campaign, "pause")
        Campaign.objects.filter(pk=campaign.pk).update(pause_reason=reason)
        campaign.pause_reason = reason
    return campaign


def campaign_resume(*, campaign: Campaign) -> Campaign:
    """Paused -> running: a learner resumes from the last checkpoint."""
    with transaction.atomic():
        campaign = _transition(campaign, "resume")
        Campaign.objects.filter(pk=campaign.pk).update(pause_reason="")
        campaign.pause_reason = ""
    return campaign


def campaign_stop(*, campaign: Campaign) -> Campaign:
    """Stop for good: the learner writes a final checkpoint, clients are told to leave."""
    return _transition(campaign, "stop")


def model_publish(
    *,
    campaign_id: int,
    version: int,
    weights: bytes,
    state: bytes | None = None,
    is_checkpoint: bool = False,
    samples_total: int = 0,
    updates_total: int = 0,
) -> ModelVersion:
    """Store a new model version (file + row), make it current, and tell connected clients."""
    campaign = Campaign.objects.get(pk=campaign_id)
    sha256 = hashlib.sha256(weights).hexdigest()
    model = ModelVersion(
        campaign=campaign,
        version=version,
        sha256=sha256,
        size_bytes=len(weights),
        is_checkpoint=is_checkpoint,
        samples_total=samples_total,
        updates_total=updates_total,
        mean_return_recent=campaign.mean_return_recent,
    )
    # The files go to the default storage (the local folder, or the SFTP server every web and learner
    # host reaches: docs/deployment.md, "Storage"); each appears whole, and only then is the row written,
    # so a web host never finds a row whose file is not there yet. A failure half-way removes what was
    # written.
    try:
        model.weights.save(f"v{version}.safetensors", ContentFile(weights), save=False)
        if state is not None:
            model.state.save(f"v{version}.state.pt", ContentFile(state), save=False)
        with transaction.atomic():
            model.save()
            Campaign.objects.filter(pk=campaign_id, model_version__lt=version).update(
                model_version=version, updates_total=updates_total
            )
    except BaseException:
        for field in (model.weights, model.state):
            if field.name:
                try:
                    field.storage.delete(field.name)
                except Exception:  # the original error is the one to report
                    log.warning("model_publish: could not remove %s after a failed publication", field.name)
        raise
    notice = model.notice()
    get_redis().hset(CampaignKeys(campaign_id).model, mapping=notice)
    # One PUBLISH, whatever the number of clients and ASGI processes (portal/relay/fanout.py).
    notice_publish(kind=MODEL, campaign_id=campaign_id, **notice)
    return model


def checkpoint_gate(*, campaign: Campaign, version: int) -> int | None:
    """Judge checkpoint ``version``, whose evaluation just completed, against the best checkpoint
    evaluated before it (``trainer.gating``): a clearly worse one is held back (its ``held_back``
    says why, for staff), and the best is then what the relay welcomes (re)connecting clients with
    (``CampaignKeys.agent``) and what the pages present as the agent. Returns the campaign's
    ``agent_version``: the best's while the gate holds, else None (the newest version)."""
    keys = CampaignKeys(campaign.id)
    reason = None
    best = None
    if settings.SOULSAI_ROLLOUT_GATE:
        # Checkpoints held back earlier never count as the best; partial (timed-out) evaluations do.
        rows = ModelVersion.objects.filter(
            campaign=campaign, is_checkpoint=True, version__lte=version, eval_episodes__gt=0, held_back=""
        )
        evaluated = {
            row.version: Evaluated(
                version=row.version, episodes=row.eval_episodes, mean_return=row.eval_return or 0.0,
                return_std=row.eval_return_std, wins=row.eval_wins,
            )
            for row in rows
        }
        candidate = evaluated.get(version)
        best = best_of([e for v, e in evaluated.items() if v != version])
        if candidate is not None and best is not None:
            reason = held_back_reason(
                candidate, best, margin=settings.SOULSAI_ROLLOUT_MARGIN, z=settings.SOULSAI_ROLLOUT_Z
            )
    ModelVersion.objects.filter(campaign=campaign, version=version).update(held_back=reason or "")
    if reason is None:
        get_redis().delete(keys.agent)
        return None
    log.info("campaign %s: %s", campaign.slug, reason)
    notice = ModelVersion.objects.get(campaign=campaign, version=best.version).notice()
    pipe = get_redis().pipeline(transaction=True)
    pipe.delete(keys.agent)
    pipe.hset(keys.agent, mapping=notice)
    pipe.execute()
    return best.version
