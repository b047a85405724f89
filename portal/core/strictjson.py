"""Strict JSON out: every JSON response and websocket message the portal sends goes through here.

Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which no JSON parser in a browser
accepts: one non-finite figure would break every page and client reading the API. Figures are
rolled up to be finite (portal.campaigns.tasks), and this is the last line: a non-finite float
becomes ``null`` (a figure the page shows as "—"), and the encoder refuses NaN outright
(``allow_nan=False``), so nothing that is not JSON can leave.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import JsonResponse


def finite(value: float | None) -> float | None:
    """``value`` if it is a finite number, else None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def sanitise(data: Any) -> Any:
    """``data`` with every non-finite float (in nested dicts, lists and tuples) replaced by None."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: sanitise(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [sanitise(value) for value in data]
    return data


def dumps(data: Any) -> str:
    """Strict JSON text of ``data`` (non-finite floats as null); what the live websocket sends."""
    return json.dumps(sanitise(data), cls=DjangoJSONEncoder, allow_nan=False)


class StrictJsonResponse(JsonResponse):
    """A ``JsonResponse`` that is always strict JSON: non-finite floats become null, never ``Infinity``."""

    def __init__(self, data: Any, **kwargs: Any) -> None:
        params = {**kwargs.pop("json_dumps_params", {}), "allow_nan": False}
        super().__init__(sanitise(data), json_dumps_params=params, **kwargs)
