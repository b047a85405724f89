"""Every SoulsAI metric that the alert rules and the Grafana dashboard name exists on a running
endpoint: the real ASGI server's /metrics and a real learner host's (``manage.py runlearner`` with
SOULSAI_METRICS_ADDR), while a real client feeds a campaign and its learner publishes.

Names from other exporters are listed explicitly (node_exporter's, redis_exporter's, Prometheus's
own ``up``); any other name in an expression fails the test, so none slips by unchecked.
"""

from __future__ import annotations

import json
import re
import sys

import pytest
import yaml

from harness import LiveProcess, free_port
from portal.campaigns.models import Campaign
from portal.campaigns.services import campaign_create, campaign_launch
from portal.machines.services import token_create
from tests.conftest import FAST_DQN, ROOT, process_env, start_client, wait_for
from tests.deploy.metrics_scrape import Samples, scrape

DEPLOY = ROOT / "deploy"
# Not SoulsAI's: Prometheus's own, node_exporter's and redis_exporter's (docs/deployment.md, "Metrics").
OTHER_EXPORTERS = {
    "up",
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
    "redis_memory_used_bytes",
    "redis_memory_max_bytes",
}
PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
}


def alert_expressions() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "soulsai.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v.get("definition")]
    return exprs


def metric_names(expr: str) -> set[str]:
    """The metric names of a PromQL expression (or a Grafana ``label_values(metric, label)``)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # label lists
    expr = re.sub(r"label_values\(\s*([a-zA-Z_:][\w:]*)\s*,[^)]*\)", r"\1", expr)
    expr = re.sub(r"\$\w+", "", expr)  # Grafana's variables
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][\w:]*", expr):
        rest = expr[match.end() :].lstrip()
        name = match.group()
        if rest.startswith("(") or name in PROMQL_WORDS or re.fullmatch(r"\d.*", name):
            continue  # a function, a keyword
        names.add(name)
    return names


def named_metrics() -> set[str]:
    return set().union(*(metric_names(e) for e in alert_expressions() + dashboard_expressions()))


def test_the_deploy_files_name_soulsai_metrics_or_listed_exporters_only():
    names = named_metrics()
    strangers = {n for n in names if not n.startswith("soulsai_")} - OTHER_EXPORTERS
    assert not strangers, f"neither SoulsAI's nor a listed exporter's: {sorted(strangers)}"
    assert {"soulsai_campaign_learner_up", "soulsai_relay_ack_seconds_bucket"} <= names
    assert metric_names('max by (campaign) (rate(a_total{x="y"}[5m])) > 0 and b') == {"a_total", "b"}
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert {job["job_name"] for job in prometheus["scrape_configs"]} >= {"soulsai-web", "soulsai-learner"}


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_every_named_metric_exists_on_the_running_endpoints(asgi_server, django_user_model, tmp_path):
    user = django_user_model.objects.create_user("volunteer", "v@example.com", "pw-12345678")
    hyperparams = {**FAST_DQN, "eval_every_samples": 0}
    campaign = campaign_create(
        slug="names-cartpole", name="Names", env_id="CartPole-v1", hyperparams=hyperparams
    )
    campaign_launch(campaign=campaign)
    _, token = token_create(user=user, campaign=campaign, name="names-rig")
    # The figures beat's roll-ups write into the row (evaluations, boss fights): shown once they exist.
    Campaign.objects.filter(id=campaign.id).update(
        eval_version=1, eval_return=12.5, eval_win_rate=0.25, win_rate_recent=0.5, mean_return_recent=20.0
    )

    port = free_port()
    env = {**process_env(), "SOULSAI_METRICS_ADDR": f"127.0.0.1:{port}"}
    argv = [sys.executable, str(ROOT / "manage.py"), "runlearner", "--slots", "1"]
    learner_host = LiveProcess("runlearner", argv, env, tmp_path)
    client = start_client(asgi_server.url, token, tmp_path / "spool", tmp_path, "--max-steps", "100000")
    procs = (learner_host, client, asgi_server)
    learner_url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_for(
            lambda: "learner host: metrics on" in learner_host.output(), 60, "runlearner to start", *procs
        )

        def learner_published() -> Samples | None:
            try:
                samples = scrape(learner_url)
            except OSError:
                return None
            return samples if "soulsai_learner_checkpoint_seconds_bucket" in samples else None

        learner = wait_for(learner_published, 150, "the learner host to publish a checkpoint", *procs)
        web = wait_for(
            lambda: (
                (s := scrape(asgi_server.url + "/metrics"))
                and "soulsai_campaign_learner_heartbeat_age_seconds" in s
                and "soulsai_relay_ack_seconds_bucket" in s
                and s
            ),
            60,
            "the web endpoint to show the learner and the relay",
            *procs,
        )
        exposed = set(web) | set(learner)
        missing = sorted(n for n in named_metrics() - OTHER_EXPORTERS if n not in exposed)
        assert not missing, f"named in deploy/ but on no endpoint: {missing}"
        device = [labels for labels, _ in learner["soulsai_learner_device"]]
        assert (
            device and device[0]["campaign_id"] == str(campaign.id) and device[0]["device"] in ("cpu", "cuda")
        )
    finally:
        client.stop()
        learner_host.stop()
