"""The operator's deployment files, run for real: nginx with the site in deploy/nginx/ in front of two
ASGI processes started with the production settings of deploy/soulsai.env.example."""

from __future__ import annotations

import http.client
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import AsgiServer, start_asgi
from harness.nginx import Nginx, nginx_missing, self_signed_cert, start_nginx
from harness.units import env_values
from tests.conftest import process_env

# nginx connects to the ASGI processes from this loopback address, clients from 127.0.0.1: the
# relay must see the client's, through SOULSAI_TRUSTED_PROXIES, never the proxy's.
PROXY_ADDRESS = "127.0.0.2"
CLIENT_ADDRESS = "127.0.0.1"
STRONG_KEY = "Jq8vx7-PzR2kLm9Tb4Wc1Nd6Yf3Hg5Se0Ua_QoViXrKtEjBlMnCpDsFhGiZw"


def web_env() -> dict[str, str]:
    """A web host's environment: the test's database and Redis, with the template's production settings."""
    template = env_values()
    return {
        **process_env(),
        "SOULSAI_ENV": template["SOULSAI_ENV"],
        "DJANGO_SECURE_PROXY_SSL_HEADER": template["DJANGO_SECURE_PROXY_SSL_HEADER"],
        "DJANGO_SECRET_KEY": STRONG_KEY,
        "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
        "SOULSAI_TRUSTED_PROXIES": PROXY_ADDRESS,
    }


@dataclass
class Stack:
    """nginx in front of two ASGI processes; ``get`` speaks HTTPS to nginx, trusting its certificate."""

    nginx: Nginx
    webs: list[AsgiServer]
    static_root: Path

    @property
    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.nginx.cert))

    def get(self, path: str, *, headers: dict[str, str] | None = None, https: bool = True):
        """(status, headers, body) of one GET through nginx, redirects not followed."""
        if https:
            conn = http.client.HTTPSConnection(
                "localhost", self.nginx.https_port, context=self.context, timeout=30
            )
        else:
            conn = http.client.HTTPConnection("localhost", self.nginx.http_port, timeout=30)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.headers, response.read()
        finally:
            conn.close()

    def stop(self) -> None:
        self.nginx.stop()
        for web in self.webs:
            web.stop()


def start_stack(folder: Path, static_root: Path) -> Stack:
    missing = nginx_missing()
    if missing:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(missing)
    webs: list[AsgiServer] = []
    try:
        for name in ("web-a", "web-b"):
            # /healthz: production redirects every other plain-HTTP request to HTTPS.
            webs.append(start_asgi(folder, env=web_env(), name=name, ready_path="/healthz"))
        cert, key = self_signed_cert(folder / "tls")
        proxy = start_nginx(folder / "nginx", upstreams=[w.port for w in webs], cert=cert, key=key,
                            static_root=static_root, proxy_bind=PROXY_ADDRESS)  # fmt: skip
    except BaseException:
        for web in webs:
            web.stop()
        raise
    return Stack(proxy, webs, static_root)


@pytest.fixture(scope="session")
def static_root(tmp_path_factory):
    """collectstatic's output in a folder of its own, which only nginx serves (the ASGI processes
    never look there), plus a file no finder knows: whatever answers for it is nginx."""
    from django.core.management import call_command
    from django.test import override_settings

    root = tmp_path_factory.mktemp("static")
    with override_settings(STATIC_ROOT=root):
        call_command("collectstatic", interactive=False, verbosity=0)
    (root / "only-in-static-root.txt").write_text("served by nginx\n")
    return root


@pytest.fixture(scope="module")
def stack(redis_server, django_db_setup, django_db_blocker, tmp_path_factory, static_root):
    stack = start_stack(tmp_path_factory.mktemp("stack"), static_root)
    yield stack
    stack.stop()
