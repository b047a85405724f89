"""The cluster bench's fault drills (bench/cluster.py --drills): one phase of load per fault.

Each drill: clients stream on the drills' campaign (the real learners train it); the fault; the
repair (what systemd or the operator does); the clients' recovery; then the phase ends once every
client's chunks are acknowledged and the learner has read every stream entry and written its stats
since, so that what the clients had acknowledged can be compared with what the learners ingested
(as harness/takeover.py counts: the relay's stored samples, the learner's ``samples_ingested``).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time

from cluster_volunteers import Volunteers, loadgen_args, log, wait_until

TAKEOVER_LIMIT_S = 60.0


def probe_handshake(cluster, token: str) -> str:
    """One new connection through the proxy: "welcome", or how it was refused (close code, HTTP status)."""
    from websockets.asyncio.client import connect

    from client_app import __version__
    from client_app import protocol as P

    async def once() -> str:
        try:
            async with connect(cluster.ws_url, additional_headers={"Authorization": f"Bearer {token}"},
                               ssl=ssl.create_default_context(cafile=str(cluster.ca)), open_timeout=10) as ws:  # fmt: skip
                await ws.send(P.pack(P.hello(client_version=__version__, machine="probe")))
                reply = P.unpack(await asyncio.wait_for(ws.recv(), 10))
                return reply["type"] if reply["type"] == P.WELCOME else f"{reply['type']}:{reply.get('code')}"
        except Exception as exc:  # noqa: BLE001
            code = getattr(getattr(exc, "rcvd", None), "code", None)
            status = getattr(getattr(exc, "response", None), "status_code", None)
            return f"close {code}" if code else (f"http {status}" if status else type(exc).__name__)

    return asyncio.run(once())


def settle(cluster) -> tuple[int, int]:
    """Once the learner has read every stream entry and written its stats since: (ingested, relay's stored)."""
    from trainer.keys import CampaignKeys

    keys = CampaignKeys(cluster.made["drills"])

    def read_all() -> bool:
        rds = cluster.rds()
        try:
            return rds.xlen(keys.stream) == rds.xpending(keys.stream, keys.group)["pending"]
        except Exception:  # noqa: BLE001  (no group yet, Redis restarting)
            return False

    wait_until(read_all, 300, "the learner to read every stream entry")
    t = time.time()
    wait_until(
        lambda: float(cluster.learner().get("heartbeat", 0)) > t + 0.5, 120, "the learner's stats after it"
    )
    stored = int(cluster.rds().hget(keys.stats, "samples") or 0)
    return int(cluster.learner().get("samples_ingested", 0)), stored


def recovery_s(result: dict, t_fault: float) -> float | None:
    """The fault until the last client interrupted since was back: welcomed again with nothing to
    resend, or its resent chunks acknowledged (None: no client was interrupted)."""
    ends = [end for start, end in result["interruptions"] if start >= t_fault - 0.5 and end is not None]
    return round(max(ends) - t_fault, 2) if ends else None


def run_fault_drills(args, cluster, drills: list[str]) -> dict:
    volunteers = Volunteers(tokens=cluster.made["drill_tokens"], ws_url=cluster.ws_url, procs=1,
                            shared=loadgen_args(args, cluster, rate=args.drill_rate, drills=True), tag="d")  # fmt: skip
    out = {}
    try:
        ready, connect_s = volunteers.wait_ready(timeout=300)
        log(f"drills: {ready}/{args.drill_clients} clients welcomed in {connect_s:.1f} s")
        ingested0, stored0 = settle(cluster)
        for name in drills:
            log(f"{name}: load for {args.drill_s:g} s, then the fault")
            volunteers.begin(time.time())
            before = volunteers.acked()
            wait_until(
                lambda b=before: volunteers.acked() > b + args.drill_clients // 4,
                120,
                f"{name}: acks to flow",
            )
            time.sleep(args.drill_s)
            t_fault = time.time()
            figures = DRILL[name](args, cluster, volunteers)
            # Recovered: nobody interrupted, and acks flowing again.
            wait_until(lambda: volunteers.down() == 0, 180, f"{name}: every client to be back")
            after = volunteers.acked()
            wait_until(
                lambda a=after: volunteers.acked() > a + args.drill_clients // 4,
                120,
                f"{name}: acks to flow again",
            )
            result = volunteers.finish(time.time())
            ingested, stored = settle(cluster)
            acked_samples = len(set(result["acked"])) * args.steps
            d_ingested, d_stored = ingested - ingested0, stored - stored0
            ingested0, stored0 = ingested, stored
            drill = {
                **figures,
                "recovery_s": recovery_s(result, t_fault), "interrupted_clients": len(result["interruptions"]),
                "interruption_s_max": round(max((e - s for s, e in result["interruptions"] if e), default=0.0), 2),
                "acked_samples": acked_samples, "stored_samples": d_stored, "ingested_samples": d_ingested,
                "lost": max(0, acked_samples - d_ingested), "duplicated": max(0, d_ingested - acked_samples) + result["acked_twice"],
                "unacked_at_end": result["unacked_at_end"], "reconnects": result["reconnects"],
                "resent": result["resent"], "dup_acks": result["dup_acks"], "reject_codes": result["reject_codes"],
                "errors": len(result["errors"]), "error_samples": result["errors"][:3],
            }  # fmt: skip
            drill["ok"] = (drill["lost"] == 0 and drill["duplicated"] == 0 and drill["unacked_at_end"] == 0
                           and figures.get("recovered", True))  # fmt: skip
            out[name] = drill
            log(f"{name}: {drill}")
    finally:
        volunteers.close()
    return out


# ---------------------------------------------------------------------------------------------------
# The faults. Each returns once its repair is done; the caller waits for the clients to recover.


def relay_kill(args, cluster, volunteers) -> dict:
    role = cluster.asgi_roles()[0]
    t = time.time()
    cluster.kill_role(role.name)
    log(f"relay_kill: {role.name} SIGKILLed")
    wait_until(lambda: volunteers.down() > 0, 10, "its clients to notice")
    noticed = volunteers.down()
    # systemd (Restart=always, RestartSec=2) starts it again; meanwhile its clients are elsewhere.
    time.sleep(2)
    cluster.start_role(role)
    return {"killed": role.name, "clients_cut": noticed, "restarted_after_s": round(time.time() - t, 1)}


def learner_kill(args, cluster, volunteers) -> dict:
    drills = cluster.made["drills"]
    before = max(cluster.versions(drills) or [0])
    victim = cluster.learner(drills).get("host")
    standby = "learner-b" if victim == "learner-a" else "learner-a"
    killed_at, killed_wall = time.monotonic(), time.time()
    cluster.kill_role(victim)
    log(f"learner_kill: {victim} SIGKILLed (last version v{before}); {standby} should take over")

    def taken_over() -> bool:
        stats = cluster.learner(drills)
        return stats.get("host") == standby and float(stats.get("heartbeat", 0)) > killed_wall

    wait_until(taken_over, TAKEOVER_LIMIT_S + 30, f"{standby} to take the campaign over")
    takeover_s = time.monotonic() - killed_at
    wait_until(
        lambda: max(cluster.versions(drills) or [0]) > before, 120, "a model version above the last before"
    )
    rising_s = time.monotonic() - killed_at
    log(
        f"learner_kill: {standby} took over in {takeover_s:.1f} s; v{max(cluster.versions(drills))} published"
    )
    cluster.start_learner(victim)  # the machine comes back: it is the standby now
    return {"killed": victim, "took_over": standby, "takeover_s": round(takeover_s, 1),
            "takeover_limit_s": TAKEOVER_LIMIT_S, "version_before": before,
            "first_new_version_s": round(rising_s, 1), "recovered": takeover_s <= TAKEOVER_LIMIT_S}  # fmt: skip


def redis_restart(args, cluster, volunteers) -> dict:
    server = cluster.redis_server
    server.kill()
    t = time.time()
    log(f"redis_restart: Redis SIGKILLed; down for {args.outage:g} s")
    probe = probe_handshake(cluster, cluster.made["drill_tokens"][0])
    time.sleep(max(0.0, args.outage - (time.time() - t)))
    cluster.redis_server = server.restart()
    back = time.time()
    log(
        f"redis_restart: Redis back from its append-only file ({back - t:.1f} s down); a new connection meanwhile: {probe}"
    )
    wait_until(lambda: float(cluster.learner().get("heartbeat", 0)) > back, 120, "the learner to run again")
    return {"down_s": round(back - t, 1), "new_connection_while_down": probe,
            "learner_back_s": round(time.time() - back, 1)}  # fmt: skip


def postgres_restart(args, cluster, volunteers) -> dict:
    drills = cluster.made["drills"]
    cluster.pg.crash()
    t = time.time()
    log(f"postgres_restart: PostgreSQL stopped (immediate); down for {args.outage:g} s")
    probe = probe_handshake(cluster, cluster.made["drill_tokens"][0])
    time.sleep(max(0.0, args.outage - (time.time() - t)))
    cluster.pg.start()
    back = time.time()
    log(f"postgres_restart: PostgreSQL back ({back - t:.1f} s down); a new connection meanwhile: {probe}")
    before = max(cluster.versions(drills) or [0])
    wait_until(
        lambda: max(cluster.versions(drills) or [0]) > before, 180, "a new model version after the restart"
    )
    after = probe_handshake(cluster, cluster.made["drill_tokens"][0])
    return {"down_s": round(back - t, 1), "new_connection_while_down": probe, "new_connection_after": after,
            "versions_rising_after_s": round(time.time() - back, 1), "recovered": after == "welcome"}  # fmt: skip


def proxy_reload(args, cluster, volunteers) -> dict:
    from harness.cluster import _tree

    proxy = cluster.proxy
    old = set(_tree(proxy.pid)) - {proxy.pid}
    t = time.time()
    proxy.reload()
    log(f"proxy_reload: nginx reloaded (SIGHUP); {len(old)} old worker process(es) finish their connections")

    wait_until(lambda: not any(_alive(p) for p in old), 90, "the old nginx workers to exit")
    return {"old_workers_gone_s": round(time.time() - t, 1)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


DRILL = {
    "relay_kill": relay_kill,
    "learner_kill": learner_kill,
    "redis_restart": redis_restart,
    "postgres_restart": postgres_restart,
    "proxy_reload": proxy_reload,
}
