"""The production topology of docs/deployment.md on one machine, as separate hosts: bench/cluster.py's world.

Hosts are network namespaces (harness/netns.py, ``routed``: they reach each other through the root
namespace's links, and nothing else):

- the **data host** is the root namespace: a private PostgreSQL (harness/postgres.py), Redis with the
  operator's file (deploy/redis/redis.conf: append-only; harness/redis_server.py), the SFTP storage
  server (harness/sftp.py), and the one Celery beat with the periodic worker (soulsai-beat,
  soulsai-worker), all on the private address only;
- **proxy**: nginx with the operator's site (deploy/nginx/soulsai.conf) on 443 and 80, TLS with a
  self-signed certificate for its address, in front of every ASGI process of both relay hosts;
- **relay-a**, **relay-b**: ``asgi_per_host`` ASGI processes each (soulsai-asgi@PORT);
- **learner-a**, **learner-b**: a learner host each (soulsai-learner, ``runlearner --slots 1``);
  learner-b is started once learner-a holds the drills' campaign, as its standby;
- **volunteers**: where the simulated clients run (bench/relay_loadgen.py enters it), with up to 191
  addresses of its own, so that per-address limits (nginx's, the portal's) count clients apart.

Every role is started from its systemd unit's ExecStart and the environment template
(harness/units.py: ``deploy/systemd/*.service``, ``deploy/soulsai.env.example``), with the host's
own values in place of the template's examples: its address (HOST), the data host's URLs, a folder
of its own for StateDirectory (/var/lib/soulsai), RuntimeDirectory (/run/...) and /etc/soulsai, and
this interpreter in place of the installed one. Nothing else of the bench's environment leaks in.

The world (``setup``): the drills' campaign (CartPole, a fast learner, launched: the learner hosts
train it) and the scale campaign (LunarLander-shaped chunks, running, whose lease the bench holds:
its drain plays the learner, as bench/relay.py's does), and a machine token per simulated client.

    cluster = Cluster(folder, asgi_per_host=2)
    try:
        cluster.start(scale_clients=5000, drill_clients=300, steps=32)
        cluster.ws_url, cluster.ca, cluster.client_addresses
    finally:
        cluster.close()      # every process, then every namespace, whatever failed
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from harness.hosts import base_env, db_rows, host_credentials, learner_stats
from harness.netns import NetnsHost, PrivateNetwork, netns_missing
from harness.nginx import Nginx, nginx_missing, self_signed_cert, start_nginx
from harness.postgres import PostgresServer, postgres_missing, start_postgres
from harness.processes import ROOT, LiveProcess, wait_for
from harness.redis_server import RedisServer, redis_server_missing, start_redis_server
from harness.sftp import SftpServer, sshd_missing, start_sftp_server
from harness.takeover import FAST
from harness.units import INSTALL_DIR, INSTALL_PYTHON, UNITS_DIR, env_values, read_unit, unit_argv
from trainer.keys import CampaignKeys

DRILL_SLUG = "cluster-drills"
SCALE_SLUG = "cluster-scale"
ASGI_FIRST_PORT = 8001
OBS_DIM = 8  # the scale campaign's chunks: LunarLander's size
LEARNER_HOSTS = ("learner-a", "learner-b")

# Run by the data host's manage.py: migrate, the two campaigns, one token per simulated client.
SETUP = """
import json, sys
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from portal.campaigns.models import Campaign
from portal.campaigns.services import campaign_create, campaign_launch, campaign_redis_sync
from portal.machines.services import token_create
args = json.loads(sys.stdin.read())
call_command("migrate", verbosity=0)
with transaction.atomic():
    user = get_user_model().objects.create_user("volunteers", "v@example.com", "pw-12345678")
    drills = campaign_create(slug=args["drill_slug"], name="Cluster drills", env_id="CartPole-v1",
                             hyperparams=args["fast"])
    drills.chunk_steps = args["steps"]
    drills.save(update_fields=["chunk_steps"])
    obs = {"type": "box", "shape": [args["obs_dim"]], "dtype": "float32",
           "low": [None] * args["obs_dim"], "high": [None] * args["obs_dim"]}
    scale = Campaign.objects.create(
        slug=args["scale_slug"], name="Cluster scale", env_id="LunarLander-v2", status=Campaign.Status.RUNNING,
        observation_space=obs, action_space={"type": "discrete", "n": 4, "start": 0}, chunk_steps=args["steps"],
    )
    drill_tokens = [token_create(user=user, campaign=drills, name=f"d{i}")[1] for i in range(args["drill_clients"])]
    scale_tokens = [token_create(user=user, campaign=scale, name=f"s{i}")[1] for i in range(args["scale_clients"])]
campaign_redis_sync(campaign=scale)
drills = campaign_launch(campaign=drills)
print("SETUP " + json.dumps({"drills": drills.id, "scale": scale.id, "drill_tokens": drill_tokens,
                             "scale_tokens": scale_tokens}))
"""

# Run on the data host during the scale drill: real model versions of the scale campaign
# (file on the storage server, row, Redis, the notice every relay process fans out), as a learner
# publishes them, each line saying when it was published.
NOTIFIER = """
import os, sys, time
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup()
from portal.campaigns.services import model_publish
campaign, start, end, every = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
# A first version before the window: the storage server's connection is made once, as a learner's is.
model_publish(campaign_id=campaign, version=1, weights=os.urandom(4096), samples_total=0)
version, at = 1, start
while at < end:
    time.sleep(max(0.0, at - time.time()))
    version += 1
    t = time.time()
    model_publish(campaign_id=campaign, version=version, weights=os.urandom(4096), samples_total=0)
    print(f"PUBLISHED {version} {t} {time.time() - t}", flush=True)
    at += every
"""


def missing() -> str | None:
    """Why the cluster cannot run on this machine (a sentence), or None."""
    return (
        netns_missing() or postgres_missing() or sshd_missing() or nginx_missing() or redis_server_missing()
    )


def progress(text: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def _answers(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=1).close()
        return True
    except OSError:
        return False


@dataclass
class Role:
    """One systemd unit's process on one host."""

    name: str  # e.g. asgi@relay-a:8001, learner-a, beat
    unit: str  # its unit file
    host: NetnsHost | None  # None: the data host (root namespace)
    env: dict[str, str]
    instance: str | None = None
    proc: LiveProcess | None = None
    starts: int = 0


@dataclass
class Cluster:
    folder: Path
    asgi_per_host: int = 1
    client_addresses: int = 191
    proxy_connections: int = 8192  # nginx's worker_connections: two per websocket
    proxy_drain_s: int = 30  # nginx's worker_shutdown_timeout: a reload's old workers close their websockets then
    network: PrivateNetwork = field(default_factory=lambda: PrivateNetwork(routed=True))
    hosts: dict[str, NetnsHost] = field(default_factory=dict)
    roles: dict[str, Role] = field(default_factory=dict)
    pg: PostgresServer | None = None
    redis_server: RedisServer | None = None
    sftp: SftpServer | None = None
    proxy: Nginx | None = None
    made: dict = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(50))

    # -- addresses ----------------------------------------------------------------------------------

    @property
    def data(self) -> str:
        return self.network.address

    @property
    def ws_url(self) -> str:
        return f"wss://{self.hosts['proxy'].address}/ws/client/"

    @property
    def https_url(self) -> str:
        return f"https://{self.hosts['proxy'].address}"

    @property
    def ca(self) -> Path:
        return self.proxy.cert

    @property
    def redis_url(self) -> str:
        return self.redis_server.url

    def rds(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_server.url, socket_timeout=10)

    def database_url(self) -> str:
        return self.pg.url(self.data)

    def asgi_roles(self) -> list[Role]:
        return [r for r in self.roles.values() if r.unit == "soulsai-asgi@.service"]

    # -- roles --------------------------------------------------------------------------------------

    def host_env(self, name: str, address: str) -> dict[str, str]:
        """The environment file as this host holds it: the template, this platform's values in place
        of its examples and secrets (docs/deployment.md), nothing else."""
        folder = self.folder / name
        env = {
            **env_values(),
            "DJANGO_SECRET_KEY": self.secret,
            "DJANGO_ALLOWED_HOSTS": self.hosts["proxy"].address,
            "DJANGO_CSRF_TRUSTED_ORIGINS": self.https_url,
            "SOULSAI_TRUSTED_PROXIES": self.hosts["proxy"].address,
            "EMAIL_HOST": "",  # mails are only logged
            "SOULSAI_METRICS_ALLOW": f"127.0.0.0/8,::1/128,{self.data}/32",
            "SOULSAI_METRICS_ADDR": "",
            "DATABASE_URL": self.database_url(),
            "REDIS_URL": self.redis_url,
            "SOULSAI_VAR_DIR": str(folder / "var/lib/soulsai"),
            "HOST": address,
            "SOULSAI_DEVICE": "cpu",
            **host_credentials(self.sftp, folder / "etc/soulsai"),
            **base_env(folder / "home"),
        }
        (folder / "var/lib/soulsai").mkdir(parents=True, exist_ok=True)
        return env

    def _localize(self, word: str, host_folder: Path) -> str:
        """An installed path in a unit, as this host's folder holds it."""
        if word == INSTALL_PYTHON:
            return sys.executable
        for installed in ("/var/lib/soulsai", "/run/", "/etc/soulsai"):
            if word.startswith(installed):
                return str(host_folder) + word
        return word.replace(INSTALL_DIR, str(ROOT))

    def start_role(self, role: Role) -> LiveProcess:
        """The unit's ExecStart with its Environment= lines, on its host (again, after a kill)."""
        host_folder = self.folder / (role.host.name if role.host else "data")
        unit = UNITS_DIR / role.unit
        service = read_unit(unit)["Service"]
        env = dict(role.env)
        for line in service.get("Environment", []):
            name, _, value = line.partition("=")
            env[name] = self._localize(value, host_folder)
        for directory in service.get("RuntimeDirectory", []):
            (host_folder / "run" / directory).mkdir(parents=True, exist_ok=True)
        argv = [self._localize(w, host_folder) for w in unit_argv(unit, env=env, instance=role.instance)]
        role.starts += 1
        log_name = re.sub(r"[^\w.-]", "_", role.name) + (f".{role.starts}" if role.starts > 1 else "")
        role.proc = LiveProcess(
            log_name, role.host.argv(argv) if role.host else argv, env, self.folder / "logs"
        )
        return role.proc

    def add_role(self, name: str, unit: str, host: NetnsHost | None, env: dict[str, str],
                 instance: str | None = None) -> Role:  # fmt: skip
        role = self.roles[name] = Role(name=name, unit=unit, host=host, env=env, instance=instance)
        self.start_role(role)
        return role

    def kill_role(self, name: str) -> None:
        """SIGKILL the role's process group (a crash: no shutdown at all)."""
        proc = self.roles[name].proc
        os.killpg(proc.pid, signal.SIGKILL)
        proc.proc.wait(10)
        proc.log.close()

    def procs(self) -> list[LiveProcess]:
        found = [r.proc for r in self.roles.values() if r.proc is not None]
        return found + ([self.proxy] if self.proxy else [])

    def role_pids(self) -> dict[str, list[int]]:
        """The processes of each role, by the role's kind (asgi, nginx, redis, postgres, ...), for CPU figures."""
        groups: dict[str, list[int]] = {}
        for role in self.roles.values():
            if role.proc is not None and role.proc.running():
                kind = role.unit.removeprefix("soulsai-").split("@")[0].removesuffix(".service")
                groups.setdefault(kind, []).extend(_tree(role.proc.pid))
        if self.proxy is not None and self.proxy.running():
            groups["nginx"] = _tree(self.proxy.pid)
        if self.redis_server is not None and self.redis_server.running():
            groups["redis"] = _tree(self.redis_server.pid)
        try:
            postmaster = int((self.pg.data / "postmaster.pid").read_text().split()[0])
            groups["postgres"] = _tree(postmaster)
        except (OSError, ValueError, IndexError, AttributeError):
            pass
        if self.sftp is not None:
            groups["sftp"] = _tree(self.sftp.proc.pid)
        return groups

    # -- the world ----------------------------------------------------------------------------------

    def start(self, *, scale_clients: int, drill_clients: int, steps: int) -> None:
        """Every host and role, the campaigns and tokens; returns once the drills' campaign has a learner."""
        t0 = time.monotonic()
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in ("proxy", "relay-a", "relay-b", *LEARNER_HOSTS, "volunteers"):
            self.hosts[name] = self.network.add_host(name)
        self.sources = self.network.add_addresses(self.hosts["volunteers"], self.client_addresses)
        progress(
            f"hosts: {', '.join(f'{n} {h.address}' for n, h in self.hosts.items())}; data host {self.data}"
        )

        # -- the data host ---------------------------------------------------------------------------
        self.pg = start_postgres(listen=[self.data], trust=[self.network.subnet])
        self.redis_server = start_redis_server(
            self.folder / "data/redis", host=self.data, password=secrets.token_urlsafe(24)
        )
        self.sftp = start_sftp_server(self.folder / "data/sftp", host=self.data)
        data_env = self.host_env("data", self.data)
        setup = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "shell", "-c", SETUP],
            input=json.dumps({"drill_slug": DRILL_SLUG, "scale_slug": SCALE_SLUG, "fast": FAST, "steps": steps,
                              "obs_dim": OBS_DIM, "drill_clients": drill_clients, "scale_clients": scale_clients}),
            env=data_env, cwd=ROOT, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        if setup.returncode != 0:
            raise RuntimeError(f"setup failed:\n{setup.stdout[-3000:]}\n{setup.stderr[-3000:]}")
        self.made = json.loads(re.search(r"^SETUP (.*)$", setup.stdout, re.M).group(1))
        # The scale campaign's learner is the bench's drain: it holds the lease, so beat's supervisor
        # queues no learner for it.
        keys = CampaignKeys(self.made["scale"])
        rds = self.rds()
        rds.set(keys.lease, "cluster-bench-drain", ex=4 * 3600)
        rds.xgroup_create(keys.stream, keys.group, id="0", mkstream=True)
        progress(
            f"data host up, {drill_clients} + {scale_clients} tokens made ({time.monotonic() - t0:.0f} s)"
        )

        # -- relay hosts, the proxy --------------------------------------------------------------------
        upstreams = []
        for name in ("relay-a", "relay-b"):
            host = self.hosts[name]
            env = self.host_env(name, host.address)
            for i in range(self.asgi_per_host):
                port = ASGI_FIRST_PORT + i
                self.add_role(f"asgi@{name}:{port}", "soulsai-asgi@.service", host, env, instance=str(port))
                upstreams.append(f"{host.address}:{port}")
        for role in self.asgi_roles():
            address, port = role.env["HOST"], int(role.instance)
            wait_for(lambda a=address, p=port, r=role: r.proc.check_alive() or _answers(a, p), 90,
                     f"{role.name} to listen", role.proc)  # fmt: skip
        proxy = self.hosts["proxy"]
        cert, key = self_signed_cert(self.folder / "proxy/tls", name="soulsai-cluster", ips=[proxy.address])
        static = self.folder / "proxy/static"
        static.mkdir(parents=True, exist_ok=True)
        self.proxy = start_nginx(
            self.folder / "proxy/nginx", upstreams=upstreams, cert=cert, key=key, static_root=static,
            server_name=proxy.address, host=proxy.address, ports=(80, 443), on_host=proxy.argv,
            workers=os.cpu_count() or 1, connections=self.proxy_connections, drain_s=self.proxy_drain_s,
        )  # fmt: skip
        progress(f"proxy https://{proxy.address} in front of {len(upstreams)} ASGI processes")

        # -- beat and the periodic worker (the data host), the learner hosts -------------------------
        self.add_role("beat", "soulsai-beat.service", None, data_env)
        self.add_role("worker", "soulsai-worker.service", None, data_env)
        self.start_learner("learner-a")
        wait_for(lambda: learner_stats(rds, self.made["drills"]).get("host") == "learner-a", 120,
                 "learner-a to take the drills' campaign", *self.procs())  # fmt: skip
        self.start_learner("learner-b")  # the standby: idle until learner-a is gone
        wait_for(lambda: " ready." in self.roles["learner-b"].proc.output(), 90, "learner-b to be ready",
                 self.roles["learner-b"].proc)  # fmt: skip
        progress(f"cluster up in {time.monotonic() - t0:.0f} s: learner-a trains, learner-b stands by")

    def start_learner(self, name: str) -> Role:
        host = self.hosts[name]
        if name in self.roles:
            self.start_role(self.roles[name])
            return self.roles[name]
        env = {
            **self.host_env(name, host.address),
            "CELERY_CONCURRENCY": "1",
            "SOULSAI_TORCH_THREADS": "1",
            "SOULSAI_METRICS_ADDR": f"{host.address}:9108",
        }
        return self.add_role(name, "soulsai-learner.service", host, env)

    # -- reading the platform -----------------------------------------------------------------------

    def learner(self, campaign_id: int | None = None) -> dict[str, str]:
        return learner_stats(self.rds(), campaign_id or self.made["drills"])

    def versions(self, campaign_id: int | None = None) -> list[int]:
        rows = db_rows(self.database_url(), "SELECT version FROM campaigns_modelversion WHERE campaign_id = %s",
                       campaign_id or self.made["drills"])  # fmt: skip
        return sorted(v for (v,) in rows)

    def start_notifier(self, start: float, end: float, every: float) -> LiveProcess:
        """Model versions of the scale campaign published from the data host during [start, end)."""
        argv = [sys.executable, "-c", NOTIFIER, str(self.made["scale"]), str(start), str(end), str(every)]
        return LiveProcess("notifier", argv, self.roles["beat"].env, self.folder / "logs")

    def errors_in_logs(self) -> dict[str, int]:
        """Tracebacks per role log (a role that crashed says so)."""
        out = {}
        for path in sorted((self.folder / "logs").glob("*.log")):
            n = path.read_text(errors="replace").count("Traceback")
            if n:
                out[path.stem] = n
        return out

    # -- the end --------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every process, then remove every namespace; never raises."""
        procs = self.procs()
        for proc in reversed(procs):
            try:
                proc.terminate()
            except Exception:  # noqa: BLE001
                pass
        for proc in reversed(procs):
            try:
                proc.stop(timeout=15)
            except Exception as exc:  # noqa: BLE001
                progress(f"cleanup {proc.name}: {exc}")
        for server in (self.sftp, self.redis_server):
            try:
                if server is not None:
                    server.stop()
            except Exception as exc:  # noqa: BLE001
                progress(f"cleanup: {exc}")
        try:
            if self.pg is not None:
                self.pg.stop()
        except Exception as exc:  # noqa: BLE001
            progress(f"cleanup postgres: {exc}")
        self.network.close()
