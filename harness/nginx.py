"""The operator's nginx site (``deploy/nginx/soulsai.conf``), run for real by tests and benches.

Debian's nginx as a separate process: the site file exactly as an operator installs it, its
placeholders filled in, inside a small main config of our own that keeps everything (pid, logs,
temporary and cache folders) under one throw-away folder, with the http-level directives Debian's
``/etc/nginx/nginx.conf`` sets around a site (so a site that repeats one fails here as it would there).
A self-signed certificate made with openssl stands in for the real one; a client trusts it through
``SSL_CERT_FILE`` (``Nginx.ca_env()``), which Python's ssl module (and so the client) reads.

    cert, key = self_signed_cert(tmp_path)
    proxy = start_nginx(tmp_path / "nginx", upstreams=[web_a.port, web_b.port], cert=cert, key=key,
                        static_root=settings.STATIC_ROOT, proxy_bind="127.0.0.2")
    proxy.https_url   # https://localhost:PORT
    proxy.stop()

``proxy_bind`` makes nginx connect to the ASGI processes from another loopback address than the
clients use, so that a test can tell the proxy's address from the client's (``SOULSAI_TRUSTED_PROXIES``).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from harness.processes import ROOT, LiveProcess, free_port, wait_for

NGINX = "/usr/sbin/nginx"
OPENSSL = "openssl"
SITE = ROOT / "deploy" / "nginx" / "soulsai.conf"
PLACEHOLDERS = ("SERVER_NAME", "HTTP_LISTEN", "HTTPS_LISTEN", "CERT", "CERT_KEY", "UPSTREAMS", "STATIC_ROOT",
                "CACHE_DIR")  # fmt: skip
_PLACEHOLDER = re.compile(r"@([A-Z_]+)@")

# Debian's nginx.conf around the site (its http-level directives, as the package ships them); the
# paths that would be root's (pid, logs, temporary files) are the folder's instead.
MAIN = """\
worker_processes {workers};
worker_rlimit_nofile {nofile};
# As docs/deployment.md has operators add to Debian's nginx.conf: a reload does not keep old workers
# alive for as long as their websockets last (hours); their clients reconnect to the new ones.
worker_shutdown_timeout {drain_s}s;
pid {folder}/nginx.pid;
error_log {folder}/error.log info;
{user}
events {{
    worker_connections {connections};
}}
http {{
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    access_log {folder}/access.log;
    gzip on;
    client_body_temp_path {folder}/tmp/body;
    proxy_temp_path {folder}/tmp/proxy;
    fastcgi_temp_path {folder}/tmp/fastcgi;
    uwsgi_temp_path {folder}/tmp/uwsgi;
    scgi_temp_path {folder}/tmp/scgi;
{proxy_bind}
    include {folder}/sites-enabled/*;
}}
"""


def nginx_missing() -> str | None:
    """Why nginx cannot be started here (a sentence), or None if it can."""
    if not os.access(NGINX, os.X_OK):
        return f"{NGINX} not found: apt-get install nginx (.ci/run does)"
    if shutil.which(OPENSSL) is None:
        return "openssl not found: apt-get install openssl"
    return None


def render_site(values: Mapping[str, str], template: str | None = None) -> str:
    """The site file with every ``@NAME@`` replaced; a missing or unknown placeholder is an error."""
    text = SITE.read_text() if template is None else template
    names = set(_PLACEHOLDER.findall(text))
    missing = sorted(names - set(values))
    unknown = sorted(set(values) - names)
    if missing or unknown:
        raise ValueError(f"nginx site placeholders: missing {missing}, unknown {unknown}")
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)


def upstream_lines(addresses: Sequence[str]) -> str:
    """``@UPSTREAMS@``: one ``server`` line per ASGI process (``host:port``), as the site's comment says."""
    return "\n    ".join(f"server {address} max_fails=1 fail_timeout=10s;" for address in addresses)


def self_signed_cert(
    folder: Path, *, name: str = "localhost", ips: Sequence[str] = ("127.0.0.1",)
) -> tuple[Path, Path]:
    """A self-signed certificate (its own CA) for ``name`` and ``ips``, valid two days: (cert, key)."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    alt = ",".join([f"DNS:{name}", *(f"IP:{ip}" for ip in ips)])
    subprocess.run(
        [OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName={alt}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class Nginx(LiveProcess):
    """nginx in front of the platform: ``https_url`` (``https://NAME:PORT``), ``http_url``, its folder."""

    folder: Path
    cert: Path
    http_port: int
    https_port: int
    http_url: str
    https_url: str

    def ca_env(self) -> dict[str, str]:
        """The environment in which Python (the client, urllib, websockets) trusts this proxy's certificate."""
        return {"SSL_CERT_FILE": str(self.cert)}

    def reload(self) -> None:
        """Re-read the configuration (SIGHUP): new workers take new connections, old ones finish theirs."""
        os.kill(self.pid, signal.SIGHUP)

    def cache_files(self) -> list[Path]:
        """The model files nginx holds in its cache right now."""
        return [p for p in (self.folder / "cache").rglob("*") if p.is_file()]


def start_nginx(
    folder: Path,
    *,
    upstreams: Sequence[str | int],
    cert: Path,
    key: Path,
    static_root: Path,
    server_name: str = "localhost",
    host: str = "127.0.0.1",
    proxy_bind: str | None = None,
    ports: tuple[int, int] | None = None,
    on_host: Callable[[list[str]], list[str]] | None = None,
    workers: int = 1,
    connections: int = 4096,
    drain_s: int = 30,
    timeout: float = 30,
) -> Nginx:
    """nginx with the operator's site in front of ``upstreams`` (ports on loopback, or ``host:port``),
    on free ports of ``host`` (or ``ports``: HTTP, HTTPS), returned once it accepts HTTPS connections.

    ``on_host`` runs it on another host (``NetnsHost.argv``, harness/cluster.py), where ``host`` is
    that host's address and ``ports`` its own: 80 and 443, as in production. ``workers`` and
    ``connections`` are nginx.conf's worker_processes and worker_connections (each websocket holds two
    connections of a worker: the client's and the upstream's). ``drain_s`` is worker_shutdown_timeout:
    how long a reload's old workers keep their websockets (30 s, as docs/deployment.md has operators
    set it) before closing them, their clients then reconnecting to the new workers."""
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("tmp", "cache", "sites-enabled"):
        (folder / sub).mkdir(exist_ok=True)
    http_port, https_port = ports or (free_port(host), free_port(host))
    addresses = [f"127.0.0.1:{u}" if isinstance(u, int) else u for u in upstreams]
    site = render_site({
        "SERVER_NAME": server_name,
        "HTTP_LISTEN": f"{host}:{http_port}",
        "HTTPS_LISTEN": f"{host}:{https_port}",
        "CERT": str(cert),
        "CERT_KEY": str(key),
        "UPSTREAMS": upstream_lines(addresses),
        "STATIC_ROOT": f"{Path(static_root).resolve()}/",
        "CACHE_DIR": str(folder / "cache"),
    })  # fmt: skip
    (folder / "sites-enabled" / "soulsai").write_text(site)
    # As root, workers would run as nobody and could not enter a test's private temporary folders.
    user = "user root;" if os.geteuid() == 0 else ""
    bind = f"    proxy_bind {proxy_bind};" if proxy_bind else ""
    (folder / "nginx.conf").write_text(MAIN.format(
        folder=folder, user=user, proxy_bind=bind, workers=workers, connections=connections, drain_s=int(drain_s),
        nofile=max(8192, 2 * connections + 64),
    ))
    argv = [NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", str(folder / "error.log"),
            "-g", "daemon off;"]  # fmt: skip
    proxy = Nginx("nginx", on_host(argv) if on_host else argv, os.environ, folder)
    proxy.folder, proxy.cert = folder, cert
    proxy.http_port, proxy.https_port = http_port, https_port
    proxy.http_url = f"http://{server_name}:{http_port}"
    proxy.https_url = f"https://{server_name}:{https_port}"

    def accepting() -> bool:
        proxy.check_alive()
        try:
            socket.create_connection((host, https_port), timeout=1).close()
            return True
        except OSError:
            return False

    try:
        wait_for(accepting, timeout, "nginx to accept connections", proxy)
    except BaseException:
        proxy.stop()
        raise
    return proxy
