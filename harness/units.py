"""The operator's process files in ``deploy/`` as a test or a bench reads them: the environment template
(``deploy/soulsai.env.example``) and the systemd units' command lines (``deploy/systemd/``).

A unit's ExecStart is turned into the argv systemd would run: ``%i`` is the instance, ``%%`` a
``%``, ``${NAME}`` the environment file's value, split the way systemd splits it (shell-like words).
The tests compare these argvs with ``portal.core.processes``'s, so the units cannot drift from what
`make run`, the tests and the benches start; a bench that wants "the processes the units start" runs
``unit_argv(...)`` with its own interpreter in place of the installed one.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.processes import ROOT

DEPLOY = ROOT / "deploy"
UNITS_DIR = DEPLOY / "systemd"
ENV_TEMPLATE = DEPLOY / "soulsai.env.example"
INSTALL_PYTHON = "/opt/soulsai/.venv/bin/python"  # where docs/deployment.md installs the checkout's venv
INSTALL_DIR = "/opt/soulsai"

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SPECIFIER = re.compile(r"%(.)")


@dataclass(frozen=True)
class EnvEntry:
    name: str
    value: str
    comment: str  # the comment lines just above it, without their '#'


def read_env_file(path: Path = ENV_TEMPLATE) -> list[EnvEntry]:
    """The ``NAME=value`` lines of a systemd environment file, each with the comment just above it."""
    entries: list[EnvEntry] = []
    comment: list[str] = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line:
            comment = []
        elif line.startswith("#"):
            comment.append(line.lstrip("#").strip())
        else:
            name, sep, value = line.partition("=")
            if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{path}:{number}: not NAME=value: {raw!r}")
            entries.append(EnvEntry(name, value.strip(), " ".join(comment)))
            comment = []
    return entries


def env_values(path: Path = ENV_TEMPLATE) -> dict[str, str]:
    """The environment file as a mapping."""
    return {entry.name: entry.value for entry in read_env_file(path)}


def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values, in order]}} (a key may repeat, as Environment= does)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        if current is None or not sep or line.endswith("\\"):
            raise ValueError(
                f"{path}:{number}: not KEY=value inside a section (no continuation lines here): {raw!r}"
            )
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def unit_setting(path: Path, section: str, key: str) -> str:
    """The value a unit sets last for ``key`` in ``section`` (KeyError if it sets none)."""
    return read_unit(path)[section][key][-1]


def unit_argv(path: Path, *, env: Mapping[str, str], instance: str | None = None) -> list[str]:
    """The argv systemd runs for the unit's ExecStart, with ``env`` for ``${NAME}`` and ``instance`` for ``%i``."""
    line = unit_setting(path, "Service", "ExecStart")

    def specifier(match: re.Match) -> str:
        if match.group(1) == "%":
            return "%"
        if match.group(1) == "i" and instance is not None:
            return instance
        raise ValueError(f"{path.name}: unexpected specifier %{match.group(1)} in ExecStart")

    words = []
    for word in shlex.split(_SPECIFIER.sub(specifier, line)):
        missing = [name for name in _VAR.findall(word) if name not in env]
        if missing:
            raise KeyError(
                f"{path.name}: ExecStart uses ${{{missing[0]}}}, which the environment does not set"
            )
        words.append(_VAR.sub(lambda m: env[m.group(1)], word))
    return words


def unit_variables(path: Path) -> set[str]:
    """The ``${NAME}`` variables a unit's ExecStart takes from its environment file."""
    return set(_VAR.findall(unit_setting(path, "Service", "ExecStart")))
