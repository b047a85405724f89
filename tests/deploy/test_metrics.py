"""The web role's /metrics on real ASGI processes: private to SOULSAI_METRICS_ALLOW (by the socket's
peer, never a forwarded address), summed across processes that share PROMETHEUS_MULTIPROC_DIR, and
moved by a real client's chunks, accepted and refused."""

from __future__ import annotations

import signal

import pytest

from portal.campaigns.services import campaign_create, campaign_launch
from portal.machines.services import token_create
from tests.conftest import start_asgi, start_client, wait_for
from tests.deploy.metrics_scrape import get, scrape, value

pytestmark = [pytest.mark.e2e]


def test_metrics_answer_loopback_only_by_default_and_never_through_a_proxy(asgi_server):
    status, text = get(asgi_server.url + "/metrics")
    assert status == 200
    assert "soulsai_relay_chunks_refused_total" in text
    # A proxy on loopback (nginx) forwards the public's requests with these headers: refused whoever
    # sends them, so a proxy in front never makes the endpoint public.
    for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded"):
        status, _ = get(asgi_server.url + "/metrics", headers={header: "127.0.0.1"})
        assert status == 403, header
    # The rest of the site is not behind the metrics check.
    assert get(asgi_server.url + "/healthz")[0] == 200


def test_metrics_refused_to_a_peer_outside_the_allow_list(tmp_path):
    # Only 127.0.0.2 may read; requests come over real connections from 127.0.0.1 and 127.0.0.2.
    server = start_asgi(tmp_path, name="web-allow", env={"SOULSAI_METRICS_ALLOW": "127.0.0.2/32"})
    try:
        status, text = get(server.url + "/metrics")
        assert status == 403, text
        assert "SOULSAI_METRICS_ALLOW" in text
        # A forwarded address naming an allowed peer changes nothing: the socket's peer decides.
        assert get(server.url + "/metrics", headers={"X-Forwarded-For": "127.0.0.2"})[0] == 403
        status, text = get(server.url + "/metrics", source="127.0.0.2")
        assert status == 200, text
        assert "soulsai_relay_connected_clients" in text
    finally:
        server.stop()


@pytest.mark.django_db(transaction=True)
def test_two_processes_sum_a_real_clients_chunks_accepted_and_refused(django_user_model, tmp_path):
    user = django_user_model.objects.create_user("volunteer", "v@example.com", "pw-12345678")
    campaign = campaign_create(slug="metrics-cartpole", name="Metrics", env_id="CartPole-v1")
    campaign_launch(campaign=campaign)  # commits: status into Redis, a learner task onto the queue
    _, token = token_create(user=user, campaign=campaign, name="metrics-rig")

    # Two relay processes of one host share the folder; 3 chunks a second per machine: a client that
    # plays CartPole at full speed gets some chunks acked and the rest refused as rate_limited.
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared), "SOULSAI_RATE_CHUNKS_PER_S": "3"}
    web_a = start_asgi(tmp_path, name="web-a", env=env)
    web_b = start_asgi(tmp_path, name="web-b", env=env)
    client = start_client(web_a.url, token, tmp_path / "spool", tmp_path, "--max-steps", "200000")
    procs = (client, web_a, web_b)
    try:
        # Scraped from B, which the client is not connected to: A's counts come through the folder.
        moved = wait_for(
            lambda: (
                (s := scrape(web_b.url + "/metrics"))
                and (value(s, "soulsai_relay_chunks_accepted_total", duplicate="false") or 0) >= 3
                and (value(s, "soulsai_relay_chunks_refused_total", reason="rate_limited") or 0) >= 1
                and value(s, "soulsai_relay_connected_clients") == 1
                and s
            ),
            90,
            "B to show A's client, its acks and refusals",
            *procs,
        )
        accepted = value(moved, "soulsai_relay_chunks_accepted_total", duplicate="false")
        assert value(moved, "soulsai_relay_ack_seconds_count") >= accepted
        # Every reason is a series from the start: rate() of one that never happened reads 0.
        assert value(moved, "soulsai_relay_chunks_refused_total", reason="schema") == 0
        # Scrape-time figures: the running campaign and the learner task waiting on its queue.
        labels = {"campaign": "metrics-cartpole", "campaign_id": str(campaign.id)}
        assert value(moved, "soulsai_campaign_model_version", **labels) == 0
        assert value(moved, "soulsai_campaign_learner_up", **labels) == 0  # no worker in this test
        assert value(moved, "soulsai_campaign_stream_backlog", **labels) >= 1
        assert value(moved, "soulsai_celery_queue_length", queue="learner") >= 1
        assert value(moved, "soulsai_metrics_source_up", source="redis") == 1

        # A relay process killed with its client connected: its connection leaves the live gauge, its
        # counters stay in the sum (totals never go back).
        web_a.proc.send_signal(signal.SIGKILL)
        web_a.proc.wait(timeout=10)
        after = wait_for(
            lambda: (
                (s := scrape(web_b.url + "/metrics"))
                and value(s, "soulsai_relay_connected_clients") == 0
                and s
            ),
            30,
            "the killed process's clients to leave the gauge",
            web_b,
        )
        assert value(after, "soulsai_relay_chunks_accepted_total", duplicate="false") >= accepted
    finally:
        client.stop()
        web_a.stop()
        web_b.stop()
