#!/usr/bin/env python
"""The stats roll-up's cost with many sending machines: ``stats_sync_campaign`` timed per round.

Beat runs the roll-up (``portal.campaigns.tasks.sync_stats``) every 2 s: it copies each campaign's
live counters from Redis into its row and every sending machine's figures (samples, episodes,
refusals, last seen, flagged) into the machine's row. This bench builds a campaign with --machines
machine tokens, then for each of --rounds rounds moves every machine's Redis figures as a relay does
when each sends a chunk (samples +32, last seen now) and times one ``stats_sync_campaign`` call: its
wall time and this process's CPU time (the worker's share; the database's own is apart).

The database is a SQLite file in a temporary folder, or with --database-url a scratch database made
on that PostgreSQL server (``<name>_rollup_<pid>``, dropped at the end); Redis is an embedded server
(or --redis-url, whose database is flushed). Progress goes to stderr, one line per round; the last
line of stdout is JSON: machines, rounds, database, sync_ms_p50, sync_ms_min, cpu_ms_p50, rows_ok
(every machine's row holds its Redis figures after the last round).

Examples:
  bench/rollup.py --machines 5000 --rounds 10
  bench/rollup.py --machines 5000 --database-url postgres://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import Sandbox  # noqa: E402


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def scratch_database(url: str) -> tuple[str, Callable[[], None]]:
    """A fresh database on the server of ``url``: its URL, and a function that drops it."""
    import psycopg

    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/') or 'postgres'}_rollup_{os.getpid()}"
    admin = urlunsplit(parts._replace(scheme="postgresql"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunsplit(parts._replace(path=f"/{name}")), drop


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--machines", type=int, default=5000, help="sending machines (default 5000)")
    parser.add_argument("--rounds", type=int, default=10, help="timed roll-ups (default 10)")
    parser.add_argument("--database-url", default="", help="a PostgreSQL server (default: a SQLite file)")
    parser.add_argument("--redis-url", default="", help="a Redis server whose database is flushed (default: embedded)")
    args = parser.parse_args()
    if args.machines < 1 or args.rounds < 1:
        parser.error("--machines and --rounds must be at least 1")

    sandbox = Sandbox(redis_url=args.redis_url or None, prefix="soulsai-bench-rollup-")
    drop = None
    try:
        if args.database_url:
            # Sandbox.setup_django always takes its SQLite file: the same steps with the scratch database.
            url, drop = scratch_database(args.database_url)
            os.environ.update(sandbox.overrides, DATABASE_URL=url)
            import django
            from django.core.management import call_command

            django.setup()
            call_command("migrate", verbosity=0)
        else:
            sandbox.setup_django()
        from django.contrib.auth import get_user_model
        from django.db import connection

        from portal.campaigns.services import campaign_create, campaign_launch, campaign_redis_sync
        from portal.campaigns.tasks import stats_sync_campaign
        from portal.core.redis import get_redis
        from portal.machines.models import MachineToken
        from trainer.keys import CampaignKeys

        campaign = campaign_launch(campaign=campaign_create(slug="rollup", name="Roll-up bench", env_id="CartPole-v1"))
        campaign_redis_sync(campaign=campaign)
        user = get_user_model().objects.create_user("bench", "bench@example.com", "pw-12345678")
        machines = MachineToken.objects.bulk_create(
            [MachineToken(user=user, campaign=campaign, name=f"rig-{i}", prefix=f"sai_b{i:08d}", key_hash=f"{i:064x}")
             for i in range(args.machines)],
            batch_size=1000,
        )  # fmt: skip
        ids = [m.pk for m in machines]
        keys, redis = CampaignKeys(campaign.id), get_redis()
        progress(f"{args.machines} machines on {connection.vendor}; {args.rounds} roll-ups")
        walls, cpus = [], []
        for r in range(args.rounds):
            now = time.time()
            pipe = redis.pipeline(transaction=False)
            for pk in ids:
                pipe.hincrby(keys.machine_samples, pk, 32)
            pipe.hset(keys.machine_episodes, mapping={pk: r for pk in ids})
            pipe.zadd(keys.clients, {str(pk): now for pk in ids})
            pipe.execute()
            t0, c0 = time.perf_counter(), time.process_time()
            stats_sync_campaign(campaign=campaign)
            walls.append((time.perf_counter() - t0) * 1000)
            cpus.append((time.process_time() - c0) * 1000)
            progress(f"[{r + 1}/{args.rounds}] {walls[-1]:.1f} ms ({cpus[-1]:.1f} ms of this process's CPU)")
        rows = dict(MachineToken.objects.filter(campaign=campaign).values_list("pk", "samples"))
        rows_ok = all(rows[pk] == 32 * args.rounds for pk in ids)
        print(json.dumps({
            "machines": args.machines, "rounds": args.rounds, "database": connection.vendor,
            "sync_ms_p50": round(statistics.median(walls), 1), "sync_ms_min": round(min(walls), 1),
            "cpu_ms_p50": round(statistics.median(cpus), 1), "rows_ok": rows_ok,
        }))  # fmt: skip
        return 0 if rows_ok else 1
    finally:
        if drop is not None:
            drop()
        sandbox.stop()


if __name__ == "__main__":
    sys.exit(main())
