"""The ASGI processes' garbage collector, tuned for thousands of long-lived websocket connections.

CPython's cyclic collector scans every tracked object of a generation when it collects it. A relay
process holding a few thousand connections holds some hundred thousand long-lived objects (their
protocol state, consumers, tasks, buffers), and with the default thresholds (700, 10, 10) it scans
them all about once every 70,000 allocations: on this project's 2-core machine each full scan
stopped the event loop for the better part of a second. With 5,000 clients at the game's pace
(`bench/relay.py --clients 5000 --rate 10 --steps 32 --obs-dim 106`), the acks' p99 was 1,547 ms
with Python's thresholds, 1,412 ms with ``gc.freeze()`` alone, 197 ms with (10000, 10, 10) and
88 ms with the default here, (50000, 20, 100), frozen (docs/deployment.md, "Garbage collection").

``tune`` freezes what the process holds once it has started (Django, the URL conf, the libraries:
never garbage, now never scanned again) and sets the thresholds: young objects are still collected
every 50,000 allocations, full scans come 1,000 times less often than by default. Cycles that reach
the oldest generation wait longer to be freed; the relay creates few (a connection's objects are
freed by reference counting when it closes).
"""

from __future__ import annotations

import gc

DEFAULT_THRESHOLDS = "50000,20,100"


def parse_thresholds(text: str) -> tuple[int, int, int] | None:
    """``SOULSAI_GC_THRESHOLDS``: three non-negative integers "g0,g1,g2" (``gc.set_threshold``), or
    "python" for the interpreter's own (no freeze either). Raises ValueError naming the problem."""
    value = text.strip()
    if value.lower() == "python":
        return None
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(
            f"SOULSAI_GC_THRESHOLDS must be three non-negative integers like {DEFAULT_THRESHOLDS!r}, "
            f"or 'python'; got {text!r}"
        )
    first, second, third = (int(p) for p in parts)
    if first == 0:
        raise ValueError("SOULSAI_GC_THRESHOLDS: a first threshold of 0 turns the collector off; use 'python' or a positive number")
    return first, second, third


def tune(thresholds: tuple[int, int, int] | None) -> None:
    """Freeze what the process holds now and set ``thresholds`` (None: leave Python's collector as it is)."""
    if thresholds is None:
        return
    gc.collect()  # what start-up left as garbage goes now, not into the frozen set
    gc.freeze()
    gc.set_threshold(*thresholds)
