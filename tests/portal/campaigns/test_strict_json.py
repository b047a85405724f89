"""Numbers stay numbers: roll-ups never produce a non-finite figure, and what the portal sends is strict JSON.

The state a past bug leaves is written into Redis directly (two episode returns of 1e308, an
evaluation whose sum is inf), the roll-ups run, and the real ASGI server's JSON API and live
websocket are read with a parser that refuses NaN and Infinity, as a browser's JSON.parse does.
"""

from __future__ import annotations

import json
import math
import urllib.request

import pytest
from websockets.sync.client import connect

from portal.campaigns.models import Campaign
from portal.campaigns.tasks import sync_stats
from portal.livestats import services as livestats
from trainer.keys import CampaignKeys

pytestmark = pytest.mark.django_db(transaction=True)


def _refuse(constant: str):
    raise ValueError(f"not JSON: {constant}")


def strict_loads(text: str | bytes):
    """json.loads as strict as a browser's JSON.parse: NaN, Infinity and -Infinity are errors."""
    return json.loads(text, parse_constant=_refuse)


def _get(server, path: str):
    with urllib.request.urlopen(server.url + path, timeout=10) as response:
        return strict_loads(response.read())


def _all_numbers_finite(data) -> bool:
    if isinstance(data, float):
        return math.isfinite(data)
    if isinstance(data, dict):
        return all(_all_numbers_finite(v) for v in data.values())
    if isinstance(data, list):
        return all(_all_numbers_finite(v) for v in data)
    return True


def _read_everything(server, slug: str) -> dict:
    """The campaign list, the campaign, its stats and its live websocket's hello and update, strictly parsed."""
    seen = {
        "list": _get(server, "/api/campaigns/"),
        "detail": _get(server, f"/api/campaigns/{slug}/"),
        "stats": _get(server, f"/api/campaigns/{slug}/stats/"),
        "checkpoints": _get(server, f"/api/campaigns/{slug}/checkpoints/"),
    }
    url = f"{server.url.replace('http', 'ws', 1)}/ws/campaigns/{slug}/"
    with connect(url, origin=server.url, open_timeout=10) as ws:  # the page's Origin, as a browser sends it
        seen["hello"] = strict_loads(ws.recv(timeout=10))
        livestats.stats_tick()
        seen["update"] = strict_loads(ws.recv(timeout=10))
    return seen


def test_returns_of_1e308_roll_up_to_a_finite_mean_and_every_answer_is_strict_json(
    asgi_server, cartpole_campaign, redis_client, publish
):
    keys = CampaignKeys(cartpole_campaign.id)
    # What a relay that took any finite return stored: two 1e308 sum to inf in a naive mean.
    redis_client.lpush(keys.returns, "1e308", "1e308")
    redis_client.hset(keys.stats, mapping={"samples": 20, "episodes": 2})
    # An evaluation summed past the largest float, and one result that is not a number at all.
    publish(cartpole_campaign, 1, is_checkpoint=True)
    redis_client.hset(keys.evals(1), mapping={"episodes": 2, "wanted": 2, "return_sum": "inf", "steps": 20})

    sync_stats()
    campaign = Campaign.objects.get(pk=cartpole_campaign.pk)
    assert campaign.mean_return_recent == pytest.approx(1e308)  # the true mean, finite
    assert campaign.eval_version == 1 and campaign.eval_return is None  # no figure rather than inf

    seen = _read_everything(asgi_server, cartpole_campaign.slug)
    assert seen["detail"]["mean_return_recent"] == pytest.approx(1e308)
    assert seen["hello"]["figures"]["mean_return_recent"] == pytest.approx(1e308)
    assert seen["update"]["point"]["mean_return"] == pytest.approx(1e308)
    assert all(_all_numbers_finite(v) for v in seen.values())


def test_figures_a_past_roll_up_left_non_finite_are_sent_as_null(asgi_server, cartpole_campaign, publish):
    # Rows written before roll-ups were finite: the API and the websocket send null, never Infinity.
    model = publish(cartpole_campaign, 1, is_checkpoint=True)
    type(model).objects.filter(pk=model.pk).update(eval_return=float("inf"), mean_return_recent=float("-inf"))
    Campaign.objects.filter(pk=cartpole_campaign.pk).update(
        mean_return_recent=float("inf"), eval_return=float("nan"), eval_version=1
    )
    livestats.stats_tick()  # a snapshot of those figures, for the stats API's series

    seen = _read_everything(asgi_server, cartpole_campaign.slug)
    assert seen["detail"]["mean_return_recent"] is None and seen["detail"]["eval_return"] is None
    assert seen["list"]["campaigns"][0]["mean_return_recent"] is None
    assert seen["stats"]["points"][0]["mean_return"] is None
    assert seen["checkpoints"]["checkpoints"][0]["eval_return"] is None
    assert seen["hello"]["figures"]["mean_return_recent"] is None
    assert seen["update"]["figures"]["eval_return"] is None
