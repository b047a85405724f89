"""The learner's store on the ORM: ``trainer.campaign.LearnerStore`` for the portal's database and storage.

Model files and checkpoints go through Django's storage API (``settings.STORAGES``): the local media
folder by default, an SFTP server shared by every host with ``SOULSAI_STORAGE=sftp``
(docs/deployment.md, "Storage"), so a learner on another machine resumes from what any learner wrote.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import paramiko
from django.db import OperationalError, close_old_connections
from django.db.models import Max

from portal.campaigns.models import Campaign, ModelVersion
from portal.campaigns.services import model_publish
from trainer.campaign import CampaignSpec, Checkpoint, PublishedModel

log = logging.getLogger(__name__)

T = TypeVar("T")

# A transient database error ("database is locked" while another process writes to SQLite, a
# connection a server dropped) is retried after these waits: about 15 s in all, then it is raised and
# the learner stops as before (the supervisor restarts it).
DB_RETRY_WAITS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
# The same for the storage engine (an SFTP server restarting, a dropped connection): about 7 s.
STORAGE_RETRY_WAITS = (0.5, 1.0, 2.0, 4.0)


def retry_transient(method: Callable[..., T]) -> Callable[..., T]:
    """Run ``method`` again after an ``OperationalError``, with a bounded backoff (DB_RETRY_WAITS)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        for attempt, wait in enumerate((*DB_RETRY_WAITS, None), start=1):
            try:
                return method(*args, **kwargs)
            except OperationalError as exc:
                if wait is None:
                    raise
                log.warning("%s: database error (%s); try %d again in %.2f s", method.__name__, exc, attempt + 1, wait)
                close_old_connections()  # a broken connection is replaced on the next query
                time.sleep(wait)
        raise AssertionError("unreachable")

    return wrapper


class StorageUnavailable(Exception):
    """The storage engine did not answer (after retries). Not an OSError on purpose: the learner falls
    back to an older checkpoint when a file is lost, but must not start afresh because the network is
    down; it stops instead, and the supervisor restarts it."""


def _read_file(field: Any, *, sha256: str | None = None) -> bytes:
    """A stored file's bytes (over the network with SFTP storage), checked against ``sha256`` if given.

    A missing file raises FileNotFoundError at once; a storage engine that does not answer is tried
    again after STORAGE_RETRY_WAITS, then StorageUnavailable.
    """
    for wait in (*STORAGE_RETRY_WAITS, None):
        try:
            with field.storage.open(field.name, "rb") as handle:
                data = handle.read()
            break
        except FileNotFoundError:
            raise
        except (OSError, EOFError, paramiko.SSHException) as exc:
            if wait is None:
                raise StorageUnavailable(f"storage: cannot read {field.name}: {exc}") from exc
            log.warning("storage: reading %s failed (%s); trying again in %.1f s", field.name, exc, wait)
            time.sleep(wait)
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{field.name}: sha256 differs from the one recorded at publication")
    return data


class CampaignStore:
    """Campaigns and their model versions as the learner reads and writes them.

    Every method retries transient database errors (``retry_transient``): a locked SQLite file must
    not crash a learner that has minutes of learning since its last checkpoint.
    """

    @retry_transient
    def campaign(self, campaign_id: int) -> CampaignSpec:
        campaign = Campaign.objects.get(pk=campaign_id)
        newest = campaign.model_versions.aggregate(v=Max("version"))["v"] or 0
        return CampaignSpec(
            campaign_id=campaign.id,
            algorithm=campaign.algorithm,
            env_id=campaign.env_id,
            hyperparams=campaign.hyperparams,
            observation_space=campaign.observation_space,
            action_space=campaign.action_space,
            chunk_steps=campaign.chunk_steps,
            # A version published after the campaign's row was last updated still counts.
            model_version=max(campaign.model_version, newest),
        )

    @retry_transient
    def checkpoint_versions(self, campaign_id: int) -> list[int]:
        return list(
            ModelVersion.objects.filter(campaign_id=campaign_id)
            .exclude(state="")
            .order_by("-version")
            .values_list("version", flat=True)
        )

    @retry_transient
    def checkpoint_read(self, campaign_id: int, version: int) -> Checkpoint:
        model = ModelVersion.objects.filter(campaign_id=campaign_id, version=version).exclude(state="").first()
        if model is None:
            raise FileNotFoundError(f"campaign {campaign_id} has no checkpoint v{version}")
        return Checkpoint(
            version=version,
            weights=_read_file(model.weights, sha256=model.sha256),
            state=_read_file(model.state),
        )

    @retry_transient
    def model_publish(
        self,
        campaign_id: int,
        *,
        version: int,
        weights: bytes,
        state: bytes | None,
        is_checkpoint: bool,
        samples_total: int,
        updates_total: int,
    ) -> PublishedModel:
        model = model_publish(
            campaign_id=campaign_id,
            version=version,
            weights=weights,
            state=state,
            is_checkpoint=is_checkpoint,
            samples_total=samples_total,
            updates_total=updates_total,
        )
        return PublishedModel(**model.notice())
