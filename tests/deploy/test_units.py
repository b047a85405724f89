"""The systemd units and the environment template in deploy/: the command lines are the platform's own
(portal.core.processes), systemd accepts every unit, and every variable is documented.

This machine's PID 1 is not systemd, so the units are not started here: ``systemd-analyze verify``
checks them in a throw-away root that holds the paths they name (the install folder, the venv's
python, the environment file), and bench/cluster.py starts each role from the same argv.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.units import (
    ENV_TEMPLATE,
    INSTALL_DIR,
    INSTALL_PYTHON,
    UNITS_DIR,
    env_values,
    read_env_file,
    read_unit,
    unit_argv,
    unit_variables,
)
from portal.core.management.commands.backup import backup_argv
from portal.core.management.commands.runlearner import runlearner_argv
from portal.core.processes import celery_beat_argv, celery_worker_argv, uvicorn_argv

UNITS = ["soulsai-asgi@.service", "soulsai-worker.service", "soulsai-beat.service", "soulsai-learner.service",
         "soulsai-backup.service"]  # fmt: skip
TIMERS = ["soulsai-backup.timer"]
SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze"
ENV = env_values()


def _ours(argv: list[str]) -> list[str]:
    """``argv`` as installed: the platform's functions build it with this interpreter, units with the venv's."""
    assert argv[0] == sys.executable
    return [INSTALL_PYTHON, *argv[1:]]


def test_every_unit_runs_the_installed_checkout_as_its_own_user_with_the_environment_file():
    assert sorted(p.name for p in UNITS_DIR.glob("*.service")) == sorted(UNITS)
    for name in UNITS:
        service = read_unit(UNITS_DIR / name)["Service"]
        assert service["EnvironmentFile"] == ["/etc/soulsai/soulsai.env"], name
        assert service["WorkingDirectory"] == [INSTALL_DIR], name
        assert service["User"] == ["soulsai"], name
        assert len(service["ExecStart"]) == 1 and service["ExecStart"][0].split()[0] == INSTALL_PYTHON, name


def test_the_asgi_unit_is_uvicorn_argv_on_its_instance_port():
    argv = unit_argv(UNITS_DIR / "soulsai-asgi@.service", env=ENV, instance="8001")
    assert argv == _ours(uvicorn_argv(host=ENV["HOST"], port=8001))
    # Its instances share one metrics folder that systemd makes, and keeps while one of them restarts.
    service = read_unit(UNITS_DIR / "soulsai-asgi@.service")["Service"]
    folder = f"/run/{service['RuntimeDirectory'][-1]}"
    assert f"PROMETHEUS_MULTIPROC_DIR={folder}" in service["Environment"]
    assert service["RuntimeDirectoryPreserve"] == ["yes"]


def test_the_worker_unit_is_celery_worker_argv_on_the_periodic_and_default_queues():
    argv = unit_argv(UNITS_DIR / "soulsai-worker.service", env=ENV)
    expected = celery_worker_argv(
        concurrency=int(ENV["CELERY_PERIODIC_CONCURRENCY"]),
        queues=("periodic", "celery"),
        node_name="worker@%h",
    )
    assert argv == _ours(expected)
    assert "-B" not in argv, "beat runs on its own, exactly once (soulsai-beat.service)"


def test_the_beat_unit_is_celery_beat_argv_with_its_schedule_in_the_state_directory():
    argv = unit_argv(UNITS_DIR / "soulsai-beat.service", env=ENV)
    assert argv == _ours(celery_beat_argv(schedule=Path("/var/lib/soulsai/celerybeat-schedule")))
    assert read_unit(UNITS_DIR / "soulsai-beat.service")["Service"]["StateDirectory"] == ["soulsai"]


def test_the_learner_unit_is_runlearner_with_its_slots_from_the_environment():
    argv = unit_argv(UNITS_DIR / "soulsai-learner.service", env=ENV)
    assert argv == [INSTALL_PYTHON, "manage.py", "runlearner", "--slots", ENV["CELERY_CONCURRENCY"]]
    # ... which becomes the learner queue's worker, in threads, as runlearner_argv builds it.
    assert runlearner_argv(slots=int(ENV["CELERY_CONCURRENCY"]))[3:] == [
        "-A", "portal", "worker", "-Q", "learner", "-P", "threads", "-c", ENV["CELERY_CONCURRENCY"], "-n", "learner@%h",
        "--loglevel", "INFO", "--without-gossip", "--without-mingle",
    ]  # fmt: skip


def test_the_backup_unit_is_backup_argv_into_its_state_directory_started_by_its_timer():
    argv = unit_argv(UNITS_DIR / "soulsai-backup.service", env=ENV)
    assert argv == _ours(backup_argv(to=Path("/var/lib/soulsai-backups"), keep=14))
    service = read_unit(UNITS_DIR / "soulsai-backup.service")["Service"]
    assert "soulsai-backups" in service["StateDirectory"][0].split() and service["Type"] == ["oneshot"]
    assert read_unit(UNITS_DIR / "soulsai-backup.timer")["Timer"]["Unit"] == ["soulsai-backup.service"]


def test_every_variable_of_the_template_has_a_comment_and_is_in_the_configuration_docs():
    configuration = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    entries = read_env_file(ENV_TEMPLATE)
    assert len({e.name for e in entries}) == len(entries), "a variable is set twice"
    for entry in entries:
        assert entry.comment, f"{entry.name} has no comment above it"
        assert f"`{entry.name}`" in configuration, f"{entry.name} is not in docs/configuration.md"
    for name in UNITS:
        missing = unit_variables(UNITS_DIR / name) - {e.name for e in entries}
        assert not missing, f"{name} uses {missing}, which the environment template does not set"


def test_the_template_is_a_production_configuration_django_accepts(tmp_path):
    """The template's settings with a real secret: `check --deploy` finds nothing to warn about."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "SOULSAI_", "REDIS_URL", "DATABASE_URL"))
    }
    env.update(ENV)
    env.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        DJANGO_SECRET_KEY="Jq8v" + "x7-PzR2kLm9Tb4Wc1Nd6Yf3Hg5Se0Ua_QoViXrKtEjBlMnCpDsFhGiZw",
        SOULSAI_VAR_DIR=str(tmp_path / "var"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",  # check --deploy reads no table
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def _systemd_analyze() -> str:
    if not os.access(SYSTEMD_ANALYZE, os.X_OK):
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            f"{SYSTEMD_ANALYZE} not found (Debian's systemd)"
        )
    return SYSTEMD_ANALYZE


def test_systemd_analyze_verify_accepts_every_unit_without_a_warning(tmp_path):
    """In a root that holds what the units name, as an installed host does: systemd's own units, the
    checkout's venv python, the environment file. Any warning (an unknown key, a bad value) fails."""
    analyze = _systemd_analyze()
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    python = root / INSTALL_PYTHON.lstrip("/")
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    (root / "etc/soulsai").mkdir(parents=True)
    shutil.copy(ENV_TEMPLATE, root / "etc/soulsai/soulsai.env")
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    for name in UNITS + TIMERS:
        shutil.copy(UNITS_DIR / name, units / name)
    for name in ["soulsai-asgi@8001.service", *UNITS[1:], *TIMERS]:
        done = subprocess.run(
            [analyze, "verify", f"--root={root}", name], capture_output=True, text=True, timeout=60
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0 and not output.strip(), f"{name}:\n{output}"


def test_systemd_analyze_verify_would_catch_a_broken_unit(tmp_path):
    """The check above is not vacuous: an unknown key and a missing executable are reported."""
    analyze = _systemd_analyze()
    broken = tmp_path / "soulsai-broken.service"
    text = (UNITS_DIR / "soulsai-worker.service").read_text()
    broken.write_text(re.sub(r"^KillSignal=", "KilSignal=", text, flags=re.M))
    done = subprocess.run([analyze, "verify", str(broken)], capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert "Unknown key 'KilSignal'" in output
    if not os.path.exists(INSTALL_PYTHON):  # this machine is no installed host
        assert INSTALL_PYTHON in output and "not executable" in output
