"""The public API's OpenAPI schema: it names every route of the URLconf, and the real server answers
every documented operation as documented (schemathesis against a live uvicorn, real DB and Redis)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from portal.campaigns.urls import api_urlpatterns
from portal.leaderboards.models import Contribution
from portal.volunteers import services
from portal.volunteers.api import OPENAPI_PATH


def _route_template(route: str) -> str:
    return "/api/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def test_the_schema_documents_every_api_route_and_no_other():
    documented = set(json.loads(OPENAPI_PATH.read_text())["paths"])
    assert documented == {_route_template(str(p.pattern)) for p in api_urlpatterns}


@pytest.fixture
def live_data(transactional_db, django_user_model, asgi_server):
    """Committed rows the live server reads: a running campaign with contributors, a team, a hidden page."""
    from portal.campaigns.services import campaign_create, campaign_launch

    campaign = campaign_launch(
        campaign=campaign_create(slug="cartpole", name="CartPole", env_id="CartPole-v1")
    )
    alice = django_user_model.objects.create_user(username="alice", password="x-long-passphrase-1")
    shy = django_user_model.objects.create_user(username="shy", password="x-long-passphrase-2")
    services.team_create(founder=alice, name="Ashen Ones")
    services.profile_set_hidden(user=shy, hidden=True)
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    team = alice.volunteer.team
    for user, hours_ago, steps in ((alice, 0, 900_000), (alice, 200, 50_000), (shy, 1, 70_000)):
        Contribution.objects.create(
            campaign=campaign, user=user, team=team if user == alice else None,
            hour=hour - timedelta(hours=hours_ago), samples=steps, episodes=steps // 200,
        )  # fmt: skip
    return {"slug": "cartpole", "username": "alice", "team": "ashen-ones", "replay_id": 1}


def test_every_documented_operation_answers_as_documented(live_data, asgi_server, tmp_path):
    """schemathesis (its CLI, as an operator would run it) on the schema the live server serves, with
    the live rows as examples so that 200s are tried as well as 404s and 400s: every check, no failure.
    Its examples and coverage phases (each operation's boundary and invalid cases) run in full; random
    fuzzing fills the rest of a 25 s budget (fuzzing alone would go on for minutes)."""
    with urllib.request.urlopen(asgi_server.url + "/api/openapi.json", timeout=20) as response:
        raw = json.loads(response.read())
    for path, item in raw["paths"].items():
        for param in item["get"].get("parameters", []):
            if param["in"] == "path":
                key = "team" if path.startswith("/api/teams/") else param["name"]
                param["example"] = live_data.get(key, 1)
    schema_file = tmp_path / "openapi.json"
    schema_file.write_text(json.dumps(raw))
    run = subprocess.run(
        [str(Path(sys.executable).with_name("st")), "run", str(schema_file), "--url", asgi_server.url,
         "--checks", "all", "--phases", "examples,coverage,fuzzing", "--max-examples", "10", "--seed", "18",
         "--workers", "2",
         "--request-timeout", "20", "--max-time", "25", "--no-color"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,  # its example database stays there
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert f"Tested: {len(raw['paths'])}" in run.stdout, run.stdout[-3000:]  # every operation
