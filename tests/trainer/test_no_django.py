"""The dependency goes one way: the trainer imports nothing of the portal, nor of Django."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import trainer

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("django", "portal"))))
"""


def test_every_trainer_module_imports_without_django_or_the_portal():
    modules = sorted(f"trainer.{m.name}" for m in pkgutil.iter_modules(trainer.__path__))
    assert {"trainer.learner", "trainer.campaign", "trainer.evaluation", "trainer.keys"} <= set(modules)
    # A fresh interpreter with no Django settings: a stray import fails, or shows in sys.modules.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "trainer", *modules],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
