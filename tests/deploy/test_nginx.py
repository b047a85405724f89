"""deploy/nginx/soulsai.conf, run by Debian's nginx with a self-signed certificate in front of two real
ASGI processes on the template's production settings: pages over HTTPS, the relay over wss with the
client's real address, static files from disk, model files cached, limits, /metrics closed, and a
killed ASGI process that nobody notices."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import ssl
import threading
from pathlib import Path

import psutil
import pytest
from websockets.sync.client import connect

import harness
from client_app import protocol as P
from portal.campaigns.services import campaign_create, campaign_launch, campaign_redis_sync, model_publish
from portal.core.clients import seats_key
from portal.machines.services import token_create
from tests.conftest import process_env, wait_for
from tests.deploy.conftest import CLIENT_ADDRESS, PROXY_ADDRESS, start_stack
from trainer.keys import CampaignKeys

pytestmark = pytest.mark.e2e

SITE_CSS = Path(__file__).resolve().parents[2] / "portal" / "static" / "css" / "site.css"


def _running_campaign(django_user_model, slug: str):
    user = django_user_model.objects.create_user(f"{slug}-player", f"{slug}@example.com", "pw-12345678")
    campaign = campaign_launch(campaign=campaign_create(slug=slug, name=slug, env_id="CartPole-v1"))
    campaign_redis_sync(campaign=campaign)
    _, token = token_create(user=user, campaign=campaign, name="rig")
    return campaign, token


def _address_seats(redis_client) -> set[str]:
    prefix = seats_key("client:addr", "")
    return {key.decode()[len(prefix) :] for key in redis_client.scan_iter(match=prefix + "*")}


def test_pages_are_served_over_https_as_secure_requests(stack):
    status, headers, body = stack.get("/")
    assert status == 200
    assert b"SoulsAI" in body
    # Production settings send HSTS only on a request they know is secure: X-Forwarded-Proto from nginx.
    assert "max-age=31536000" in headers["Strict-Transport-Security"]
    status, headers, body = stack.get("/healthz")
    assert status == 200 and json.loads(body)["ok"] is True


def test_plain_http_is_redirected_to_https(stack):
    status, headers, _ = stack.get("/campaigns/?page=2", https=False)
    assert status == 301
    assert headers["Location"] == "https://localhost/campaigns/?page=2"


def test_static_files_come_from_collectstatics_folder_with_caching_headers(stack):
    status, headers, body = stack.get("/static/css/site.css")
    assert status == 200
    assert body == SITE_CSS.read_bytes()
    assert headers["Cache-Control"] == "public, max-age=86400"
    status, _, body = stack.get("/static/only-in-static-root.txt")
    assert (status, body) == (200, b"served by nginx\n"), "nginx, not the ASGI processes, serves /static/"
    assert stack.get("/static/no-such-file.css")[0] == 404


@pytest.mark.django_db(transaction=True)
def test_a_model_file_is_cached_by_nginx_and_immutable(stack, django_user_model):
    campaign, _ = _running_campaign(django_user_model, "cached-model")
    weights = os.urandom(200_000)
    model_publish(campaign_id=campaign.id, version=1, weights=weights)
    path = f"/campaigns/{campaign.slug}/models/1.safetensors"

    first = stack.get(path)
    second = stack.get(path)
    for status, headers, body in (first, second):
        assert status == 200
        assert body == weights
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert headers["ETag"] == f'"{hashlib.sha256(weights).hexdigest()}"'
    assert first[1]["X-Cache-Status"] == "MISS"
    assert second[1]["X-Cache-Status"] == "HIT"
    assert stack.nginx.cache_files(), "the cached copy is on nginx's disk"
    # A version that does not exist (yet) is not cached: it is served once it is published.
    assert stack.get(f"/campaigns/{campaign.slug}/models/2.safetensors")[0] == 404
    model_publish(campaign_id=campaign.id, version=2, weights=b"second version")
    assert stack.get(f"/campaigns/{campaign.slug}/models/2.safetensors")[2] == b"second version"


def test_metrics_are_closed_to_the_outside(stack):
    for path in ("/metrics", "/metrics/", "/metrics?name[]=x"):
        assert stack.get(path)[0] == 403, path


def test_too_many_api_requests_from_one_address_get_429(stack):
    """10 requests/s with a burst of 20 per address: 16 threads asking at once pass it within a few
    hundred requests (bounded), and the refusal is nginx's 429."""
    statuses: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def ask() -> None:
        for _ in range(25):
            if stop.is_set():
                return
            status = stack.get("/api/campaigns/")[0]
            with lock:
                statuses.append(status)
            if status == 429:
                stop.set()

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert 429 in statuses, f"no 429 in {len(statuses)} requests"
    assert set(statuses) <= {200, 429}
    assert statuses.count(200) >= 20, "the burst passes before the limit bites"


@pytest.mark.django_db(transaction=True)
def test_a_real_client_streams_through_nginx_over_wss_and_the_relay_sees_its_own_address(
    stack, django_user_model, redis_client, tmp_path
):
    campaign, token = _running_campaign(django_user_model, "through-nginx")
    env = {**process_env(), **stack.nginx.ca_env()}  # trusts the self-signed certificate (SSL_CERT_FILE)
    client = harness.start_client(stack.nginx.https_url, token, tmp_path / "spool", tmp_path,
                                  "--max-steps", "600", "--max-sps", "150", env=env)  # fmt: skip
    try:
        wait_for(
            lambda: CLIENT_ADDRESS in _address_seats(redis_client),
            60,
            "the client's seat",
            client,
            *stack.webs,
        )
        # The relay's peer is nginx (proxy_bind), yet it counts the client's own address.
        assert any(_proxied_connections(web) for web in stack.webs)
        assert PROXY_ADDRESS not in _address_seats(redis_client), "the relay counted nginx, not the client"
        assert client.proc.wait(timeout=120) == 0, client.output()
    finally:
        client.stop()
    stats = CampaignKeys(campaign.id)
    assert int(redis_client.hget(stats.stats, "samples")) == 600, "every step acked and stored once"
    assert not list((tmp_path / "spool").rglob("*.chunk")), "acked chunks leave the spool"


@pytest.mark.django_db(transaction=True)
def test_a_forwarded_address_sent_by_the_client_itself_is_not_believed(
    stack, django_user_model, redis_client
):
    _, token = _running_campaign(django_user_model, "spoofed")
    context = ssl.create_default_context(cafile=str(stack.nginx.cert))
    headers = {
        "Authorization": f"Bearer {token}",
        "X-Forwarded-For": "203.0.113.9",
        "X-Real-IP": "203.0.113.9",
    }
    url = stack.nginx.https_url.replace("https://", "wss://") + "/ws/client/"
    with connect(url, ssl=context, additional_headers=headers, max_size=P.MAX_FRAME_BYTES):
        seats = wait_for(lambda: _address_seats(redis_client), 30, "the connection's seat", *stack.webs)
        assert seats == {CLIENT_ADDRESS}


@pytest.mark.django_db(transaction=True)
def test_an_asgi_process_killed_mid_stream_goes_unnoticed(
    redis_server, django_user_model, redis_client, tmp_path, static_root
):
    """SIGKILL the ASGI process that holds a real client's websocket: requests through nginx keep
    succeeding (the next upstream), the client reconnects through nginx to the other process and
    resends, and every step is stored exactly once. (1,200 CartPole steps stay under the stream's
    high-water mark: no learner drains it here, and past the mark acks would slow the client down.)"""
    campaign, token = _running_campaign(django_user_model, "killed-web")
    stack = start_stack(tmp_path / "stack", static_root)
    env = {**process_env(), **stack.nginx.ca_env()}
    client = harness.start_client(stack.nginx.https_url, token, tmp_path / "spool", tmp_path,
                                  "--max-steps", "1200", "--max-sps", "150", env=env)  # fmt: skip
    keys = CampaignKeys(campaign.id)
    try:
        procs = (client, *stack.webs)
        wait_for(
            lambda: int(redis_client.hget(keys.stats, "samples") or 0) >= 200, 60, "the first samples", *procs
        )
        # No other request went through nginx yet: the web process with a connection from it holds the client.
        victim = wait_for(
            lambda: next((w for w in stack.webs if _proxied_connections(w)), None), 10, "the client's process"
        )
        survivor = next(w for w in stack.webs if w is not victim)
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(10)
        samples_at_kill = int(redis_client.hget(keys.stats, "samples"))

        for _ in range(10):
            status, _, body = stack.get("/healthz")
            assert status == 200, body
        assert client.proc.wait(timeout=120) == 0, client.output()
        assert int(redis_client.hget(keys.stats, "samples")) > samples_at_kill
        assert survivor.running()
    finally:
        client.stop()
        stack.stop()
    stats = redis_client.hgetall(keys.stats)
    assert int(stats[b"samples"]) == 1200, "nothing lost, nothing counted twice"
    ids = [P.decode_stored_chunk(fields[b"c"]).id for _, fields in redis_client.xrange(keys.stream)]
    assert len(ids) == len(set(ids)) == int(stats[b"chunks"])


def _proxied_connections(web: harness.AsgiServer) -> list:
    """The web process's open TCP connections from nginx (its proxy_bind address)."""
    return [
        c for c in psutil.Process(web.pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr.ip == PROXY_ADDRESS and c.laddr.port == web.port
    ]  # fmt: skip
