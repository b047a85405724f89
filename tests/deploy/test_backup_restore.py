"""The restore drill: a backup of a live data host brought up on a fresh one, campaigns, counters and
models intact, and training going on from the restored checkpoint.

The old data host is a private PostgreSQL, Redis with deploy/redis/redis.conf and an SFTP storage
server (harness/datahost.py). On it a real platform runs: an ASGI server, a Celery worker with beat
(the learner and the roll-ups), three campaigns (running, draft, stopped), the client wheel, and a
real client streaming CartPole chunks while the learner publishes models and checkpoints. While all of
that runs, `manage.py backup` writes a set. Then the old host is gone; `manage.py restore_backup`
brings the set up on a fresh host (a new PostgreSQL cluster, a new Redis folder, a new SFTP root),
and a new platform on it shows what the manifest recorded: the campaigns with their statuses, the
counters (samples, chunks, episodes, per machine), every model version downloading with its sha256,
the wheel; the learner resumes from the restored checkpoint and publishes past the restored version.

Its servers are its own (never the suite's DATABASE_URL or REDIS_URL), so `.ci/run` runs it in its
first pass only (marker separate_hosts). With CI set, missing PostgreSQL, Redis or sshd binaries fail it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import psycopg
import pytest
import redis

from harness.datahost import DataHost, data_host_missing, start_data_host
from harness.platform import start_asgi, start_celery_worker, start_client
from harness.processes import ROOT, wait_for
from harness.redis_server import CONF as REDIS_CONF
from harness.takeover import FAST, base_env
from trainer.keys import CampaignKeys

pytestmark = [pytest.mark.e2e, pytest.mark.separate_hosts, pytest.mark.timeout(600)]

SLUG, DRAFT, STOPPED = "drill-cartpole", "drill-draft", "drill-stopped"
SETUP = f"""
import json
from django.contrib.auth import get_user_model
from django.core.management import call_command
from portal.campaigns.services import campaign_create, campaign_launch, campaign_stop
from portal.machines.services import token_create
call_command("migrate", verbosity=0)
call_command("build_client_wheel", verbosity=0)
user = get_user_model().objects.create_user("volunteer", "v@example.com", "pw-12345678")
campaign = campaign_launch(campaign=campaign_create(slug={SLUG!r}, name="Drill", env_id="CartPole-v1",
                                                    hyperparams={FAST!r}))
campaign_create(slug={DRAFT!r}, name="Drill draft", env_id="CartPole-v1")
campaign_stop(campaign=campaign_create(slug={STOPPED!r}, name="Drill stopped", env_id="CartPole-v1"))
token, secret = token_create(user=user, campaign=campaign, name="drill-rig")
print("SETUP " + json.dumps({{"campaign": campaign.id, "token": secret, "machine": token.id}}))
"""


def platform_env(host: DataHost, folder: Path) -> dict[str, str]:
    return {
        **base_env(folder / "home"),
        **host.env(),
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DJANGO_SECRET_KEY": "backup-drill-test-" + "k" * 40,
        "SOULSAI_VAR_DIR": str(folder / "var"),
        "SOULSAI_LEASE_SECONDS": "6",
    }


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert done.returncode == 0, f"manage.py {args[0]} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def manage_fails(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0, f"manage.py {args[0]} should have refused:\n{done.stdout}"
    return done.stderr


def api(web, path: str) -> dict:
    with urllib.request.urlopen(web.url + path, timeout=30) as response:
        return json.loads(response.read())


def download_sha256(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return hashlib.sha256(response.read()).hexdigest()


def rows(host: DataHost, sql: str, *params) -> list[tuple]:
    with psycopg.connect(host.pg.url(host.address), connect_timeout=10) as conn:
        return conn.execute(sql, params).fetchall()


def redis_hash(client: redis.Redis, key: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(key).items()}


@pytest.fixture
def cleanup():
    stops: list = []
    yield stops
    for stop in reversed(stops):
        stop()


def test_a_backup_of_a_live_data_host_comes_up_on_a_fresh_one_with_campaigns_counters_and_models(
    tmp_path, cleanup
):
    why = data_host_missing()
    if why:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(why)

    # -- the old data host, a platform on it, a client and a learner at work -----------------------
    old = start_data_host(tmp_path / "old-data")
    cleanup.append(old.stop)
    env = platform_env(old, tmp_path / "old-web")
    made = json.loads(re.search(r"^SETUP (.*)$", manage(env, "shell", "-c", SETUP), re.M).group(1))
    keys = CampaignKeys(made["campaign"])
    web = start_asgi(tmp_path, env=env, name="web-old")
    cleanup.append(web.stop)
    worker = start_celery_worker(tmp_path, env=env, name="worker-old")
    cleanup.append(worker.stop)
    volunteer = {
        **base_env(tmp_path / "volunteer" / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "volunteer" / "cfg"),
    }
    client = start_client(web.url, made["token"], tmp_path / "volunteer" / "spool", tmp_path, "--max-sps", "800",
                          env=volunteer, name="client-old", client_name="drill-rig")  # fmt: skip
    cleanup.append(client.stop)
    wait_for(
        lambda: api(web, f"/api/campaigns/{SLUG}/checkpoints/")["checkpoints"]
        and api(web, f"/api/campaigns/{SLUG}/")["model_version"] >= 4,
        180, "the learner to publish 4 models and a checkpoint", web, worker, client,
    )  # fmt: skip
    old_redis = old.redis.client()
    before = int(redis_hash(old_redis, keys.stats)["samples"])

    # -- the nightly backup, taken while the client streams and the learner trains -----------------
    out = manage(env, "backup", "--to", str(tmp_path / "backups"), "--keep", "3")
    backup = Path(out.strip().splitlines()[-1])
    manifest = json.loads((backup / "manifest.json").read_text())
    client.check_alive()
    worker.check_alive()
    counters = manifest["redis"]["counters"]
    stats = counters[keys.stats]
    assert int(stats["samples"]) >= before > 0
    assert manifest["redis"]["streams"].keys() == {keys.stream}
    pg = manifest["postgres"]
    assert {slug: c["status"] for slug, c in pg["campaigns"].items()} == {
        SLUG: "running",
        DRAFT: "draft",
        STOPPED: "stopped",
    }
    models = [m for m in pg["models"] if m["campaign"] == SLUG]
    checkpoints = [m["version"] for m in models if m["checkpoint"]]
    assert len(models) >= 4 and checkpoints
    # Beat prunes superseded versions meanwhile: one pruned between the dump and the storage copy is
    # in the dump without its files (the restore deletes its row as the prune would have). Never a checkpoint.
    missing = set(manifest["storage"]["missing"])
    assert not manifest["storage"]["mismatched"]
    assert not {n for m in models if m["checkpoint"] for n in (m["weights"], m["state"])} & missing
    models = [m for m in models if m["weights"] not in missing]
    stored = {
        n.removeprefix("storage/"): f["sha256"]
        for n, f in manifest["files"].items()
        if n.startswith("storage/")
    }
    for m in models:
        assert stored[m["weights"]] == m["sha256"]
        assert not m["state"] or m["state"] in stored
    wheels = [n for n in stored if n.startswith("client-wheel/") and n.endswith(".whl")]
    assert len(wheels) == 1
    # The set's counters are a moment of the live platform: the old one went on counting after it.
    client.stop()
    assert int(redis_hash(old_redis, keys.stats)["samples"]) >= int(stats["samples"])

    # -- the old data host is gone ------------------------------------------------------------------
    for proc in (worker, web):
        proc.stop()
    old.stop()

    # -- a fresh data host: a new cluster, a new SFTP root, an empty Redis folder ---------------------
    new = start_data_host(tmp_path / "new-data", redis=False)
    cleanup.append(new.stop)
    assert rows(new, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    assert new.sftp.files() == []
    env = platform_env(new, tmp_path / "new-web")
    out = manage(
        env, "restore_backup", str(backup), "--redis-dir", str(new.redis_dir), "--redis-conf", str(REDIS_CONF)
    )
    assert out.strip().endswith("restored"), out
    # A second restore over it is refused, part by part; a damaged set is refused before anything.
    assert "is not empty" in manage_fails(env, "restore_backup", str(backup), "--parts", "postgres")
    refused = manage_fails(
        env, "restore_backup", str(backup), "--parts", "redis", "--redis-dir", str(new.redis_dir)
    )
    assert "already holds Redis data" in refused
    damaged = tmp_path / "damaged" / backup.name
    shutil.copytree(backup, damaged)
    weights = damaged / "storage" / models[-1]["weights"]
    data = weights.read_bytes()  # its last byte flipped (a fixed byte could be the one already there)
    weights.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    refused = manage_fails(env, "restore_backup", str(damaged), "--redis-dir", str(tmp_path / "unused"))
    assert f"storage/{models[-1]['weights']}: sha256 differs" in refused and "nothing was restored" in refused
    assert not (tmp_path / "unused").exists()

    new.start_redis()  # the operator's config: it starts from the restored append-only file
    rds = new.redis.client()
    assert (new.redis_dir / "appendonlydir").is_dir() and not (new.redis_dir / "dump.rdb").exists()
    for key, values in counters.items():
        assert redis_hash(rds, key) == values, key
    assert {k: rds.xlen(k) for k in manifest["redis"]["streams"]} == manifest["redis"]["streams"]
    assert sorted(new.sftp.files()) == sorted(stored)

    # -- a new web host on it: before any roll-up, the pages show the database as it was dumped -----
    web = start_asgi(tmp_path, env=env, name="web-new")
    cleanup.append(web.stop)
    listed = {c["slug"]: c["status"] for c in api(web, "/api/campaigns/")["campaigns"]}
    assert listed == {SLUG: "running", STOPPED: "stopped"}  # drafts are never listed
    assert rows(new, "SELECT slug, status FROM campaigns_campaign ORDER BY slug") == sorted(
        (slug, c["status"]) for slug, c in pg["campaigns"].items()
    )
    detail = api(web, f"/api/campaigns/{SLUG}/")
    dumped = pg["campaigns"][SLUG]
    assert (detail["model_version"], detail["samples_total"], detail["episodes_total"]) == (
        dumped["model_version"], dumped["samples_total"], dumped["episodes_total"]
    )  # fmt: skip
    assert [c["version"] for c in api(web, f"/api/campaigns/{SLUG}/checkpoints/")["checkpoints"]] == sorted(
        checkpoints, reverse=True
    )
    for m in models:  # every model version downloads from the new storage with its sha256
        assert download_sha256(f"{web.url}/campaigns/{SLUG}/models/{m['version']}.safetensors") == m["sha256"]
    page = urllib.request.urlopen(f"{web.url}/download/", timeout=30).read().decode()
    wheel_name = wheels[0].rsplit("/", 1)[-1]
    assert wheel_name in page
    assert download_sha256(f"{web.url}/download/{wheel_name}") == stored[wheels[0]]

    # -- beat and a learner: the counters roll up from the restored Redis, training goes on ---------
    worker = start_celery_worker(tmp_path, env=env, name="worker-new")
    cleanup.append(worker.stop)
    wait_for(
        lambda: api(web, f"/api/campaigns/{SLUG}/")["samples_total"] == int(stats["samples"]),
        60, "the roll-up of the restored counters", web, worker,
    )  # fmt: skip
    detail = api(web, f"/api/campaigns/{SLUG}/")
    assert detail["episodes_total"] == int(stats["episodes"])
    machine = str(made["machine"])
    token_row = rows(
        new, "SELECT samples, episodes FROM machines_machinetoken WHERE id = %s", made["machine"]
    )
    assert token_row == [
        (int(counters[keys.machine_samples][machine]), int(counters[keys.machine_episodes][machine]))
    ]
    assert int(stats["chunks"]) > 0 and redis_hash(rds, keys.stats)["chunks"] == stats["chunks"]

    newest = max(checkpoints)
    wait_for(lambda: f"resumed from checkpoint v{newest} " in worker.output(), 120,
             f"the learner to resume from the restored checkpoint v{newest}", worker)  # fmt: skip
    client = start_client(web.url, made["token"], tmp_path / "volunteer" / "spool", tmp_path, "--max-sps", "800",
                          env=volunteer, name="client-new", client_name="drill-rig")  # fmt: skip
    cleanup.append(client.stop)
    restored_top = max(m["version"] for m in models)
    wait_for(
        lambda: api(web, f"/api/campaigns/{SLUG}/")["model_version"] > restored_top,
        180, f"a model version past the restored v{restored_top}", web, worker, client,
    )  # fmt: skip
    # The relay counts the volunteer's new chunks on from the set's figures.
    wait_for(
        lambda: int(redis_hash(rds, keys.stats)["samples"]) > int(stats["samples"]),
        60, "the client's chunks on the restored platform", web, client,
    )  # fmt: skip
