"""Which protocol this code speaks, and how client versions compare (the server's minimum-version check)."""

from __future__ import annotations

import re

PROTOCOL_VERSION = 1


def parse_version(text: str) -> tuple[int, ...]:
    """``"0.10.2"`` -> ``(0, 10, 2)``: numeric dotted versions, compared as tuples, not as strings.

    Shared by the client and the server's minimum-version check. Only the leading digits of each
    part count (``"1.2rc1"`` -> ``(1, 2)``), trailing zeros do not (``"1.0" == "1"``), and anything
    unreadable is ``(0,)``, the oldest possible version, so a garbled version is asked to upgrade.
    """
    parts: list[int] = []
    for piece in str(text).strip().split(".")[:4]:
        digits = re.match(r"\d{1,6}", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts) or (0,)


def version_older(version: str, minimum: str) -> bool:
    """True when ``version`` is older than ``minimum``."""
    return parse_version(version) < parse_version(minimum)
