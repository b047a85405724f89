"""The storage part of a backup set, against the test storage and database: a model version that beat
prunes between the dump and the copy is reported missing, and the restore deletes its row as the prune
would have; a checkpoint's missing file is reported as damage and its row kept."""

from __future__ import annotations

import hashlib

from django.core.files.storage import default_storage

from portal.campaigns.models import ModelVersion
from portal.campaigns.services import model_publish
from portal.core.backup.files import storage_backup
from portal.core.backup.postgres import _snapshot_contents, postgres_finish_prune
from tests.portal.conftest import model_bytes


def test_a_version_pruned_during_the_backup_is_missing_from_the_set_and_its_row_goes_at_restore(
    draft_campaign, tmp_path
):
    for version in (1, 2, 3):
        model_publish(campaign_id=draft_campaign.id, version=version, weights=model_bytes(version),
                      state=b"learner state" if version == 2 else None, is_checkpoint=version == 2)  # fmt: skip
    models = [m for m in _snapshot_contents()["models"] if m["campaign"] == draft_campaign.slug]
    first, checkpoint = models[0], models[1]
    default_storage.delete(first["weights"])  # beat's prune, after the dump read the row
    default_storage.delete(checkpoint["state"])  # damage: checkpoints are never pruned

    copied = storage_backup(tmp_path, models=models)
    assert copied["missing"] == sorted([first["weights"], checkpoint["state"]])
    assert copied["mismatched"] == []
    for m in models[1:]:
        assert m["weights"] in copied["files"]
        assert hashlib.sha256((tmp_path / "storage" / m["weights"]).read_bytes()).hexdigest() == m["sha256"]

    deleted, damaged = postgres_finish_prune(copied["missing"])
    assert (deleted, damaged) == (1, [checkpoint["state"]])
    assert sorted(ModelVersion.objects.filter(campaign=draft_campaign).values_list("version", flat=True)) == [
        2,
        3,
    ]
