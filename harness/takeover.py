"""A learner host dies and another takes over: the scenario of tests/e2e/test_learner_host.py and bench/takeover.py.

The root network namespace is the data and web host: a private PostgreSQL, Redis and the SFTP storage
server, the ASGI server (pages, API, the relay, model downloads), Celery beat and the periodic worker,
all listening on one private address only. Two learner hosts and a volunteer's machine are network
namespaces made here (harness/netns.py), each with its own hostname, an empty var folder of its own
and, in its environment, nothing but the platform's addresses and credentials; each learner host is
the one documented command, `manage.py runlearner --slots 1`. Needs root (ip netns), Debian's
PostgreSQL binaries and openssh-server (``missing()`` says which is not there); traffic goes only to
the namespaces made here.

A real client trains a CartPole campaign through the web host and downloads every model from it.
Then the learner host that trains it is killed (SIGKILL on its process group: the machine is gone)
while it holds chunks that no checkpoint covers yet; the other one, idle until then, takes the
campaign (its lease lapses, beat's supervisor queues a learner, Celery gives it to the host with a
free slot) and resumes from the checkpoint on the storage server.

``run`` asserts what a user would notice (a model not served by the web host, versions going back,
a file left in a host's folder, ...) and returns the figures: ``takeover_s`` (kill to the second
host's first heartbeat), ``checkpoint``/``checkpoint_samples``, ``held_at_kill`` (stream entries the
dead host held), ``acked`` (samples the relay acknowledged), ``ingested`` (samples the surviving
learner counts once the stream is drained), ``lost`` (acked - ingested, when positive) and
``duplicated`` (ingested - acked, when positive).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import redis

from harness.hosts import base_env, db_rows, host_credentials, learner_stats  # noqa: F401  (their old home)
from harness.netns import PrivateNetwork, netns_missing
from harness.platform import EmbeddedRedis, start_asgi
from harness.postgres import postgres_missing, start_postgres
from harness.processes import ROOT, LiveProcess, wait_for
from harness.sftp import sshd_missing, start_sftp_server
from portal.core.processes import PERIODIC_QUEUES, celery_worker_argv, client_argv, client_env
from trainer.keys import CampaignKeys

SLUG = "far-cartpole"
FAST = {
    # as the tests' FAST_DQN (tests/conftest.py): a learner that publishes and checkpoints often
    "learning_starts": 256,
    "batch_size": 32,
    "hidden": [64, 64],
    "publish_every_updates": 10,
    "checkpoint_every_versions": 2,
    "eps_decay_samples": 2000,
    "publish_min_seconds": 0.3,
    # Every step the client plays is then a training sample: the learner's count and the relay's are
    # the same unit (tests/e2e/test_evaluation.py covers evaluation).
    "eval_every_samples": 0,
}
TAKEOVER_LIMIT_S = 60.0

# Run by the web host's manage.py against the private database: migrate, then a running campaign (its
# learner task goes onto the learner queue when the launch commits) and a volunteer's machine token.
SETUP = f"""
import json
from django.contrib.auth import get_user_model
from django.core.management import call_command
from portal.campaigns.services import campaign_create, campaign_launch
from portal.machines.services import token_create
call_command("migrate", verbosity=0)
user = get_user_model().objects.create_user("volunteer", "v@example.com", "pw-12345678")
campaign = campaign_create(slug={SLUG!r}, name="Far CartPole", env_id="CartPole-v1", hyperparams={FAST!r})
campaign = campaign_launch(campaign=campaign)
_, token = token_create(user=user, campaign=campaign, name="far-rig")
print("SETUP " + json.dumps({{"campaign": campaign.id, "token": token}}))
"""


def api(web, path: str) -> dict:
    with urllib.request.urlopen(web.url + path, timeout=10) as response:
        return json.loads(response.read())


def model_files(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.suffix in (".safetensors", ".pt") and p.is_file()]


def progress(text: str) -> None:
    print(f"[takeover {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def run(tmp_path: Path) -> dict:

    network = PrivateNetwork()
    stops: list = []  # what to stop, newest first, whatever happens
    procs: list[LiveProcess] = []
    try:
        hosts = {name: network.add_host(name) for name in ("learner-a", "learner-b", "volunteer")}
        data = network.address  # the data and web host (the root namespace), as every host reaches it

        # -- the data host: PostgreSQL, Redis, the SFTP storage server -----------------------------
        pg = start_postgres(listen=[data], trust=[network.subnet])
        stops.append(pg.stop)
        store = EmbeddedRedis(tmp_path / "redis", host=data)
        stops.append(store.stop)
        sftp = start_sftp_server(tmp_path / "sftp", host=data)
        stops.append(sftp.stop)
        platform = {
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "DJANGO_SECRET_KEY": "learner-host-test-" + "k" * 40,
            "DATABASE_URL": pg.url(data),
            "REDIS_URL": store.url,
            "SOULSAI_LEASE_SECONDS": "6",  # as the test settings: a dead learner's lease lapses in 6 s
        }
        rds = redis.Redis.from_url(store.url)

        # -- the web host: migrate and set up, the ASGI server, beat and the periodic worker -------
        web_var = tmp_path / "web"
        web_env = {
            **base_env(web_var / "home"),
            **platform,
            **host_credentials(sftp, web_var / "etc"),
            "SOULSAI_VAR_DIR": str(web_var / "var"),
            "DJANGO_ALLOWED_HOSTS": data,
        }
        setup = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "shell", "-c", SETUP],
            env=web_env, cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
        made = json.loads(re.search(r"^SETUP (.*)$", setup.stdout, re.M).group(1))
        campaign_id, token = made["campaign"], made["token"]
        keys = CampaignKeys(campaign_id)

        web = start_asgi(tmp_path, env=web_env, name="web", host=data, extra=["--access-log"])
        procs.append(web)
        periodic = LiveProcess(
            "periodic",
            celery_worker_argv(concurrency=2, beat_schedule=web_var / "beat-schedule", queues=PERIODIC_QUEUES,
                               node_name="periodic@web"),
            web_env, tmp_path,
        )  # fmt: skip
        procs.append(periodic)

        # -- learner hosts: one command each, addresses and credentials only -----------------------
        def learner_host(name: str) -> LiveProcess:
            folder = tmp_path / name
            env = {
                **base_env(folder / "home"),
                **platform,
                **host_credentials(sftp, folder / "etc"),
                "SOULSAI_VAR_DIR": str(folder / "var"),  # its own, empty
                "SOULSAI_DEVICE": "cpu",
                "SOULSAI_TORCH_THREADS": "1",
            }
            argv = hosts[name].argv([sys.executable, str(ROOT / "manage.py"), "runlearner", "--slots", "1"])
            proc = LiveProcess(name, argv, env, tmp_path)
            procs.append(proc)
            return proc

        first = learner_host("learner-a")

        # -- a volunteer's machine: the real client, the web host's address and a token ------------
        volunteer = tmp_path / "volunteer"
        client_base = {**base_env(volunteer / "home"), "XDG_CONFIG_HOME": str(volunteer / "config")}
        client = LiveProcess(
            "client",
            hosts["volunteer"].argv(client_argv(server=web.url, spool_dir=volunteer / "spool", name="far-rig",
                                                extra=["--max-sps", "800"])),
            client_env(client_base, token=token), tmp_path,
        )  # fmt: skip
        procs.append(client)

        everyone = (first, client, web, periodic)
        wait_for(
            lambda: learner_stats(rds, campaign_id).get("host") == "learner-a",
            90, "learner-a to take the campaign", *everyone,
        )  # fmt: skip
        # The idle standby: started once learner-a holds the campaign, so that it is the one to go.
        second = learner_host("learner-b")
        checkpoints = (
            "SELECT version, samples_total FROM campaigns_modelversion "
            "WHERE campaign_id = %s AND is_checkpoint ORDER BY version DESC"
        )
        wait_for(
            lambda: db_rows(pg.url(data), checkpoints, campaign_id) and api(web, f"/api/campaigns/{SLUG}/")["model_version"] >= 4,
            90, "learner-a to publish models and a checkpoint", *everyone,
        )  # fmt: skip
        wait_for(lambda: " ready." in second.output(), 60, "learner-b to be ready", second)

        # -- learner-a's machine is gone ------------------------------------------------------------
        # The hard moment: learner-a has ingested chunks that no checkpoint holds yet (it holds their
        # stream entries). Acknowledged to the client, they must still reach learner-b, once. Caught
        # for sure: the host is frozen (SIGSTOP) and killed only if it holds entries then; otherwise it
        # goes on (SIGCONT) and is tried again. (Its stats hash, written once a second, may never show
        # it holding: a checkpoint follows each read within a second.)
        def frozen_holding() -> bool:
            os.killpg(first.proc.pid, signal.SIGSTOP)
            if int(rds.xpending(keys.stream, keys.group)["pending"]) > 0:
                return True
            os.killpg(first.proc.pid, signal.SIGCONT)
            return False

        wait_for(frozen_holding, 60, "learner-a to hold chunks no checkpoint covers", *everyone, interval=0.1)
        a_ingested = int(learner_stats(rds, campaign_id).get("samples_ingested", 0))
        killed_at, killed_wall = time.monotonic(), time.time()
        os.killpg(first.proc.pid, signal.SIGKILL)
        first.proc.wait(timeout=10)
        held_at_kill = int(rds.xpending(keys.stream, keys.group)["pending"])
        progress(f"learner-a killed holding {held_at_kill} stream entries")
        before = max(v for (v,) in db_rows(pg.url(data), "SELECT version FROM campaigns_modelversion WHERE campaign_id = %s", campaign_id))
        checkpoint, checkpoint_samples = db_rows(pg.url(data), checkpoints, campaign_id)[0]
        assert checkpoint_samples > 0

        def taken_over() -> bool:
            stats = learner_stats(rds, campaign_id)
            return stats.get("host") == "learner-b" and float(stats.get("heartbeat", 0)) > killed_wall

        everyone = (second, client, web, periodic)
        wait_for(taken_over, TAKEOVER_LIMIT_S, "learner-b to take the campaign over", *everyone)
        takeover_s = time.monotonic() - killed_at
        progress(f"learner-b took the campaign {takeover_s:.1f} s after learner-a was killed")

        assert f"resumed from checkpoint v{checkpoint} " in second.output(), second.output()[-3000:]
        wait_for(
            lambda: db_rows(pg.url(data), "SELECT 1 FROM campaigns_modelversion WHERE campaign_id = %s AND version > %s", campaign_id, before),
            60, "learner-b to publish a model above the last one before the kill", *everyone,
        )  # fmt: skip
        first_new, first_new_samples = db_rows(
            pg.url(data),
            "SELECT version, samples_total FROM campaigns_modelversion WHERE campaign_id = %s AND version > %s "
            "ORDER BY version LIMIT 1",
            campaign_id, before,
        )[0]  # fmt: skip
        assert first_new == before + 1  # version numbers go on from where learner-a left them
        assert first_new_samples >= checkpoint_samples  # counters resumed from the checkpoint, not 0
        versions = [v for (v,) in db_rows(pg.url(data), "SELECT version FROM campaigns_modelversion WHERE campaign_id = %s", campaign_id)]
        assert len(versions) == len(set(versions))

        # The client plays learner-b's models too, then stops; the learner drains the stream.
        wait_for(
            lambda: (m := re.findall(r"model v(\d+)", client.output())) and int(m[-1]) > before,
            60, "the client to play a model of learner-b", *everyone,
        )  # fmt: skip
        client.stop()
        assert client.proc.returncode == 0, client.output()[-3000:]

        # The client is stopped: what the relay acked is final. Once learner-b has read every entry and
        # written its stats since, its count is final too.
        wait_for(
            lambda: rds.xlen(keys.stream) == rds.xpending(keys.stream, keys.group)["pending"],
            120, "learner-b to read every stream entry (it reads as fast as it learns)", second,
        )  # fmt: skip
        read_at = time.time()
        wait_for(
            lambda: float(learner_stats(rds, campaign_id).get("heartbeat", 0)) > read_at,
            10, "learner-b's stats after it read everything", second,
        )  # fmt: skip
        acked = int(rds.hget(keys.stats, "samples") or 0)
        ingested = int(learner_stats(rds, campaign_id).get("samples_ingested", 0))
        if acked != ingested:
            progress(f"the relay acked {acked} samples, learner-b counts {ingested}; learner-a had ingested "
                     f"{a_ingested} when killed, checkpoint v{checkpoint} held {checkpoint_samples}")
        assert acked > checkpoint_samples

        # Every model the client loaded came from the web host, downloaded by the volunteer's machine.
        downloads = {
            int(v)
            for v in re.findall(
                rf'{re.escape(hosts["volunteer"].address)}:\d+ - "GET /campaigns/{SLUG}/models/(\d+)\.safetensors HTTP/1\.1" 200',
                web.output(),
            )
        }  # fmt: skip
        played = {int(v) for v in re.findall(r"model v(\d+)", client.output())}
        assert played and played <= downloads, (played, downloads)
        assert min(downloads) <= before < max(downloads)  # models of both learner hosts

        # Nothing went through a folder: the files are on the storage server only.
        stored = sftp.files()
        assert f"models/{SLUG}/v{first_new}.safetensors" in stored and f"models/{SLUG}/v{checkpoint}.state.pt" in stored
        for folder in ("learner-a", "learner-b", "web"):
            assert not model_files(tmp_path / folder), folder
        return {
            "takeover_s": round(takeover_s, 1), "takeover_limit_s": TAKEOVER_LIMIT_S,
            "checkpoint": checkpoint, "checkpoint_samples": checkpoint_samples,
            "last_version_before_kill": before, "first_version_after": first_new,
            "a_ingested_at_kill": a_ingested, "held_at_kill": held_at_kill, "acked": acked, "ingested": ingested,
            "lost": max(0, acked - ingested), "duplicated": max(0, ingested - acked), "models_played": len(played),
        }  # fmt: skip
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            proc.stop(timeout=10)
        for stop in reversed(stops):
            try:
                stop()
            except Exception as exc:  # noqa: BLE001  (the rest must still be cleaned up)
                progress(f"cleanup: {exc}")
        network.close()


def missing() -> str | None:
    """Why the scenario cannot run on this machine (a sentence), or None."""
    return netns_missing() or postgres_missing() or sshd_missing()
