"""The case registry: every hostile case, its category and the one check it aims at.

A case is a function ``fn(ctx) -> Verdict`` registered with ``@case(category, "one line")``; its id
is ``<category>.<function name>`` unless given. Families of near-identical cases (one malformed
field each) register through ``add``. ``--help`` and ``--list`` are generated from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

# Categories, in the order they run and print. HTTP login floods go last: once the site limits
# logins per address, everything after them from 127.0.0.1 would share that budget.
CATEGORIES = {
    "handshake": "the hello and the connection's credentials",
    "malformed": "frames that break the wire format or the chunk schema (refused with a reason code)",
    "lying": "well-formed chunks that lie: returns, rewards, bounds, masks, versions, outcomes, unknown keys",
    "storage": "what is stored is what was validated: padding, de-duplication, Redis limits",
    "forged_eval": "evaluation results nobody asked for, or that no episode could have produced",
    "flood": "rates: frames, garbage, connections per token and per address",
    "amplification": "small or capped frames that cost the server far more than their size",
    "browser": "the browsers' websocket /ws/campaigns/<slug>/ and the origin of both websocket routes",
    "identity": "revoking, deactivating or deleting while a connection streams",
    "hostile_server": "a fake relay and model server against the real client (client_app)",
    "http": "pages and JSON API: login floods, token caps, strict JSON, access checks",
}


@dataclass
class Verdict:
    """What a case found. ``refused``: the server (or client) said no; ``got_through``: the attack
    had the effect it aimed at, as read back from Redis, the database, the public API or the
    process afterwards (stored, counted, a figure moved, a crash, a cost past its bound, a leak)."""

    refused: bool
    got_through: bool
    note: str = ""


@dataclass
class Case:
    id: str
    category: str
    doc: str
    fn: Callable[..., Verdict]
    quick: bool = False
    cost_bound: bool = False  # judged on memory and event-loop stall too (amplification-like cases)
    budget_s: float = 30.0  # the case is abandoned (an error) past this


@dataclass
class Registry:
    cases: list[Case] = field(default_factory=list)

    def add(self, category: str, name: str, doc: str, fn: Callable[..., Verdict], **kw) -> Case:
        assert category in CATEGORIES, category
        case_id = f"{category}.{name}"
        assert case_id not in {c.id for c in self.cases}, f"duplicate case id {case_id}"
        item = Case(case_id, category, doc, fn, **kw)
        self.cases.append(item)
        return item

    def select(self, *, only: str | None = None, quick: bool = False) -> list[Case]:
        chosen = [c for c in self.cases if (only is None or c.category == only)]
        if quick:
            chosen = [c for c in chosen if c.quick]
        order = list(CATEGORIES)
        return sorted(chosen, key=lambda c: order.index(c.category))

    def describe(self) -> str:
        lines = []
        for category in CATEGORIES:
            mine = [c for c in self.cases if c.category == category]
            lines.append(f"\n{category} ({len(mine)}): {CATEGORIES[category]}")
            lines += [f"  {c.id:<48} {c.doc}" for c in mine]
        return "\n".join(lines)


REGISTRY = Registry()


def case(category: str, doc: str, *, name: str | None = None, **kw) -> Callable:
    """Register the decorated function as a case of ``category``."""

    def wrap(fn: Callable[..., Verdict]) -> Callable[..., Verdict]:
        REGISTRY.add(category, name or fn.__name__, doc, fn, **kw)
        return fn

    return wrap
