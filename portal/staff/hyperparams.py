"""The launch form's hyperparameters: every one with its default for an algorithm and environment, and
every problem of a campaign's overrides found at once, with "did you mean" and warnings for values that
are allowed but almost surely wrong. Reads trainer.config (the learner's own dataclasses and checks)."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import re
from dataclasses import dataclass, field
from typing import Any

from trainer.config import CONFIGS, DEFAULTS

_FIELD_LINE = re.compile(r"^\s+(\w+): [^=]+=.*?#\s*(.+)$")


@functools.cache
def _docs(algorithm: str) -> dict[str, str]:
    """Each field's one-line comment in trainer/config.py (its documentation there)."""
    docs: dict[str, str] = {}
    for cls in reversed(CONFIGS[algorithm].__mro__):
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        for line in source.splitlines():
            if match := _FIELD_LINE.match(line):
                docs[match.group(1)] = match.group(2).strip()
    return docs


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]


def defaults(algorithm: str, env_id: str) -> list[dict[str, Any]]:
    """[{name, default, kind, help}] of every hyperparameter, with the environment's own defaults."""
    env_defaults = DEFAULTS[algorithm].get(env_id, {})
    docs = _docs(algorithm)
    rows = []
    for f in dataclasses.fields(CONFIGS[algorithm]):
        value = env_defaults.get(f.name, _default(f))
        base = _default(f)
        kind = "bool" if isinstance(base, bool) else "int" if isinstance(base, int) else \
            "float" if isinstance(base, float) else "str" if isinstance(base, str) else "list"  # fmt: skip
        rows.append({"name": f.name, "default": list(value) if isinstance(value, tuple) else value,
                     "kind": kind, "help": docs.get(f.name, "")})  # fmt: skip
    return rows


def defaults_table(env_ids: list[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """{algorithm: {env_id: defaults(...)}} for the form's script."""
    return {algorithm: {env: defaults(algorithm, env) for env in env_ids} for algorithm in CONFIGS}


@dataclass
class Review:
    errors: list[str] = field(default_factory=list)  # the campaign cannot be made with these
    warnings: list[str] = field(default_factory=list)  # allowed, but almost surely not meant


def _type_error(name: str, value: Any, base: Any) -> str | None:
    if isinstance(base, bool):
        return None if isinstance(value, bool) else f"{name} must be true or false, got {value!r}"
    if isinstance(base, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"{name} must be a whole number, got {value!r}"
    if isinstance(base, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else f"{name} must be a number, got {value!r}"
    ok = (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096 for v in value)
    )
    return None if ok else f"{name} must be a list of layer widths from 1 to 4096, got {value!r}"


def review(algorithm: str, env_id: str, overrides: dict[str, Any]) -> Review:
    """Every problem of ``overrides`` at once (unknown names with a suggestion, wrong types, the
    algorithm's own range checks), and warnings for values it accepts but that are almost surely wrong."""
    result = Review()
    fields = {f.name: f for f in dataclasses.fields(CONFIGS[algorithm])}
    values = dict(DEFAULTS[algorithm].get(env_id, {}))
    for name, value in overrides.items():
        if name not in fields:
            close = difflib.get_close_matches(name, fields, n=1, cutoff=0.6)
            hint = (
                f": did you mean “{close[0]}”?"
                if close
                else f" for {algorithm.upper()} (see the fields below)"
            )
            result.errors.append(f"Unknown hyperparameter “{name}”{hint}")
            continue
        problem = _type_error(name, value, _default(fields[name]))
        if problem:
            result.errors.append(problem)
        else:
            values[name] = tuple(value) if isinstance(value, list) else float(value) if isinstance(
                _default(fields[name]), float) else value  # fmt: skip
    # The range checks on every value of the right type (a wrong one keeps its default here), so that
    # staff see all that is wrong in one go.
    config = CONFIGS[algorithm](**values)
    result.errors.extend(message for ok, message in config.checks() if not ok)
    if result.errors:
        return result
    if config.lr > 0.01:
        result.warnings.append(
            f"lr {config.lr:g} is allowed but almost surely too large: Adam's learning rates are usually "
            "1e-4 to 1e-3 (the defaults here); the agent would likely never learn."
        )
    if config.eval_every_samples == 0:
        result.warnings.append(
            "Evaluation is off (eval_every_samples 0): checkpoints get no greedy evaluation, so the campaign "
            "page and the history show no evaluated win rate or return."
        )
    if config.gamma < 0.9:
        result.warnings.append(
            f"gamma {config.gamma:g} makes the agent short-sighted: 0.98 to 0.999 is usual."
        )
    return result
