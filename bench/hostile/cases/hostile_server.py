"""A hostile server against the real client: a fake relay (websockets) and model server (HTTP) on
loopback, driving client_app's own ``ModelFetcher``, ``Connection`` and ``Runner``; each case checks
what the client did (read a local file, sent its token elsewhere, accepted NaN weights, imported a
module, crashed)."""

from __future__ import annotations

import base64
import hashlib
import http.server
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from hostile.registry import REGISTRY, Verdict

TOKEN = "sai_feedfacecafe_hostile-server-test-token"


def model_bytes(fill: float | None = 0.0, *, obs_dim: int = 4, version: int = 1) -> bytes:
    from client_app.policy import QNetworkSpec, save_model

    spec = QNetworkSpec(obs_dim=obs_dim, n_actions=2, hidden=(8,))
    params = {k: np.full(s, fill, np.float32) for k, s in spec.parameter_shapes().items()}
    return save_model(spec, params, version=version)


class ModelServer:
    """Two HTTP servers on loopback: ``home`` (the client's server) and ``foreign`` (another origin,
    which records every Authorization header it is sent)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.redirects: dict[str, str] = {}
        self.lengths: dict[str, int] = {}
        self.seen_auth: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                auth = self.headers.get("Authorization")
                if auth and self.server is outer.foreign:
                    outer.seen_auth.append(auth)
                if self.path in outer.redirects:
                    self.send_response(302)
                    self.send_header("Location", outer.redirects[self.path])
                    self.end_headers()
                    return
                body = outer.files.get(self.path, b"")
                self.send_response(200 if self.path in outer.files else 404)
                self.send_header("Content-Length", str(outer.lengths.get(self.path, len(body))))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass

        self.home = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.foreign = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        for server in (self.home, self.foreign):
            threading.Thread(target=server.serve_forever, daemon=True).start()
        self.home_url = f"http://127.0.0.1:{self.home.server_port}/"
        # "localhost" is another origin than "127.0.0.1" for the client, whatever it resolves to
        self.foreign_url = f"http://localhost:{self.foreign.server_port}/"

    def close(self):
        for server in (self.home, self.foreign):
            server.shutdown()
            server.server_close()


def _fetch(notice_url: str, data: bytes, *, setup=None, check=None) -> Verdict:
    """The real ModelFetcher.fetch of a notice whose sha256 matches ``data``: through when it returns a policy."""
    from client_app.fetcher import ModelFetcher
    from client_app.protocol import ModelNotice

    server = ModelServer()
    try:
        url = setup(server) if setup else notice_url
        fetcher = ModelFetcher(server_url=server.home_url, token=TOKEN, check=check, timeout=5)
        notice = ModelNotice(version=1, url=url, sha256=hashlib.sha256(data).hexdigest())
        try:
            policy = fetcher.fetch(notice)
            outcome, got = f"loaded a policy from {url[:60]}", policy is not None
        except Exception as exc:  # noqa: BLE001 - the client's refusal, whatever its type
            outcome, got = f"{type(exc).__name__}: {str(exc)[:120]}", False
        leaked = bool(server.seen_auth)
        return Verdict(not got and not leaked, got or leaked, outcome + (f"; token sent to {server.foreign_url}" if leaked else ""))
    finally:
        server.close()


def file_url(world) -> Verdict:
    data = model_bytes()
    path = Path(tempfile.mkdtemp(prefix="hostile-")) / "model.safetensors"
    path.write_bytes(data)
    return _fetch(path.as_uri(), data)


REGISTRY.add("hostile_server", "file_url", "a model notice with a file:// URL: the client reads no local file",
             file_url, quick=True)


def evaluate_file_url(world) -> Verdict:
    """The ack's 'evaluate' field goes through the evaluations' own fetcher: same rule."""
    from client_app.evaluation import Evaluations
    from client_app.protocol import ModelNotice

    data = model_bytes()
    path = Path(tempfile.mkdtemp(prefix="hostile-")) / "model.safetensors"
    path.write_bytes(data)
    evaluations = Evaluations(server_url="http://127.0.0.1:9/", token=TOKEN, spool=lambda i, f: True)
    try:
        policy = evaluations.fetcher.fetch(ModelNotice(version=1, url=path.as_uri(),
                                                       sha256=hashlib.sha256(data).hexdigest()))
        return Verdict(False, policy is not None, "the evaluation fetcher loaded a local file")
    except Exception as exc:  # noqa: BLE001
        return Verdict(True, False, f"{type(exc).__name__}: {str(exc)[:100]}")


REGISTRY.add("hostile_server", "evaluate_file_url", "an 'evaluate' request with a file:// URL: nothing read",
             evaluate_file_url)


def data_url(world) -> Verdict:
    data = model_bytes()
    return _fetch("data:application/octet-stream;base64," + base64.b64encode(data).decode(), data)


REGISTRY.add("hostile_server", "data_url", "a model notice with a data: URL: refused (http(s) on the server only)",
             data_url)


def _serve(path: str, data: bytes, **extra):
    def setup(server: ModelServer) -> str:
        server.files[path] = data
        server.lengths.update(extra.get("lengths", {}))
        return path

    return setup


def foreign_redirect(world) -> Verdict:
    data = model_bytes()

    def setup(server):
        server.files["/stolen"] = data
        server.redirects["/models/1.safetensors"] = server.foreign_url + "stolen"
        return "/models/1.safetensors"

    return _fetch("", data, setup=setup)


REGISTRY.add("hostile_server", "redirect_foreign_origin",
             "the model URL redirects to another origin: the token is not sent there, and nothing is loaded",
             foreign_redirect)


def foreign_absolute(world) -> Verdict:
    data = model_bytes()

    def setup(server):
        server.files["/m"] = data
        return server.foreign_url + "m"

    return _fetch("", data, setup=setup)


REGISTRY.add("hostile_server", "absolute_foreign_url",
             "a notice naming a model on another origin: refused, the token never sent", foreign_absolute)


def redirect_file(world) -> Verdict:
    data = model_bytes()
    path = Path(tempfile.mkdtemp(prefix="hostile-")) / "model.safetensors"
    path.write_bytes(data)

    def setup(server):
        server.redirects["/m"] = path.as_uri()
        return "/m"

    return _fetch("", data, setup=setup)


REGISTRY.add("hostile_server", "redirect_to_file", "the model URL redirects to file://: nothing read", redirect_file)


def _weights(fill: float, name: str, doc: str):
    def fn(world) -> Verdict:
        data = model_bytes(fill)
        return _fetch("", data, setup=_serve("/m", data))

    REGISTRY.add("hostile_server", name, doc, fn)


_weights(float("nan"), "nan_weights", "a model of NaN weights with the right sha256: the client refuses it")
_weights(float("inf"), "inf_weights", "a model of infinite weights: the client refuses it")
_weights(3e38, "overflowing_weights", "weights of 3e38 whose Q-values overflow to infinity: refused")


def sha_mismatch(world) -> Verdict:
    from client_app.fetcher import ModelFetcher
    from client_app.protocol import ModelNotice

    server = ModelServer()
    try:
        server.files["/m"] = model_bytes()
        fetcher = ModelFetcher(server_url=server.home_url, token=TOKEN, timeout=5)
        try:
            fetcher.fetch(ModelNotice(version=1, url="/m", sha256="0" * 64))
            return Verdict(False, True, "loaded a model whose sha256 differs")
        except Exception as exc:  # noqa: BLE001
            return Verdict(True, False, f"{type(exc).__name__}")
    finally:
        server.close()


REGISTRY.add("hostile_server", "sha256_mismatch", "a model whose sha256 differs from the notice: refused", sha_mismatch)


def huge_length(world) -> Verdict:
    data = model_bytes()
    return _fetch("", data, setup=_serve("/m", data, lengths={"/m": 300 << 20}))


REGISTRY.add("hostile_server", "content_length_300mib", "a model announced at 300 MiB: refused before reading",
             huge_length)


def wrong_arch(world) -> Verdict:
    from client_app.compat import policy_mismatch

    obs = {"type": "box", "shape": [4], "dtype": "float32", "low": [None] * 4, "high": [None] * 4}
    act = {"type": "discrete", "n": 2, "start": 0}
    data = model_bytes(obs_dim=7)
    return _fetch("", data, setup=_serve("/m", data), check=lambda p: policy_mismatch(p, obs, act))


REGISTRY.add("hostile_server", "wrong_architecture", "a model for 7 observations on a 4-observation campaign: refused",
             wrong_arch)


# -- a fake relay ---------------------------------------------------------------------------------


class FakeRelay:
    """A websocket server on loopback that welcomes any client with ``welcome`` then runs ``after(ws)``."""

    def __init__(self, *, env_id: str = "CartPole-v1", after=None, chunk_steps: int = 16):
        from websockets.sync.server import serve

        from client_app import protocol as P

        self.after = after
        self.received = 0
        obs = {"type": "box", "shape": [4], "dtype": "float32", "low": [-4.8, None, -0.42, None],
               "high": [4.8, None, 0.42, None]}
        self.welcome = P.Welcome(
            campaign={"slug": "fake", "name": "Fake", "env_id": env_id, "env_kwargs": {}, "algorithm": "dqn",
                      "status": "running", "url": "/campaigns/fake/"},
            observation_space=obs, action_space={"type": "discrete", "n": 2, "start": 0}, chunk_steps=chunk_steps,
            model=None, machine={"name": "rig", "prefix": "feedfacecafe"},
        ).to_wire()

        def handler(ws):
            try:
                ws.recv(timeout=10)
                ws.send(P.pack(self.welcome))
                if self.after:
                    self.after(ws)
                for frame in ws:
                    self.received += 1
                    try:
                        message = P.unpack(frame)
                        ws.send(P.pack(P.Ack(id=message.get("id"), duplicate=False, model_version=0,
                                             wait_ms=0).to_wire()))
                    except Exception:
                        pass
            except Exception:
                pass

        self.server = serve(handler, "127.0.0.1", 0, max_size=None)
        self.port = self.server.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def _run_client(relay: FakeRelay, seconds: float = 12.0) -> tuple[int | None, str]:
    """The real Runner against the fake relay for at most ``seconds``; (exit code or None, its stderr)."""
    import io

    from client_app.runner import RunConfig, Runner

    err = io.StringIO()
    runner = Runner(RunConfig(server_url=relay.url, token=TOKEN, machine="rig",
                              spool_dir=Path(tempfile.mkdtemp(prefix="hostile-spool-")), max_steps=40,
                              progress_every=0, quiet=True, drain_timeout=2), out=io.StringIO(), err=err)
    box: dict = {}
    thread = threading.Thread(target=lambda: box.setdefault("code", runner.run()), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        runner.request_stop()
        thread.join(5)
    return box.get("code"), err.getvalue()


def module_env(world) -> Verdict:
    """A welcome naming ``module:Env``: gymnasium would import that module on the volunteer's machine."""
    import sys

    folder = Path(tempfile.mkdtemp(prefix="hostile-mod-"))
    marker = folder / "imported"
    name = f"hostile_probe_{int(time.time() * 1000) % 10**9}"
    (folder / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n")
    sys.path.insert(0, str(folder))
    relay = FakeRelay(env_id=f"{name}:Env")
    try:
        code, err = _run_client(relay)
    finally:
        relay.close()
        sys.path.remove(str(folder))
    imported = marker.exists()
    return Verdict(code == 2, imported, f"exit {code}; module imported {imported}; {err.strip()[-120:]}")


REGISTRY.add("hostile_server", "module_env_id", "a welcome with env id 'module:Env': the client imports nothing",
             module_env, budget_s=40)


def unknown_env(world) -> Verdict:
    relay = FakeRelay(env_id="NoSuchEnv-v9")
    try:
        code, err = _run_client(relay)
    finally:
        relay.close()
    return Verdict(code == 2, code not in (2, 0), f"exit {code}; {err.strip()[-120:]}")


REGISTRY.add("hostile_server", "unknown_env_id", "a welcome naming an env that does not exist: a clear refusal, no crash",
             unknown_env, budget_s=40)


def _connection_survives(after, doc_name: str):
    def fn(world) -> Verdict:
        from client_app.connection import Connection

        relay = FakeRelay(after=after)
        connection = Connection(server_url=relay.url, token=TOKEN, machine="rig", backoff=(0.2, 0.5))
        try:
            connection.start()
            welcomed = connection.wait_for_welcome(5) is not None
            time.sleep(1.5)
            alive, state = connection.alive, connection.snapshot()
        finally:
            connection.stop()
            relay.close()
        crashed = not alive or state.state == "failed"
        return Verdict(welcomed and not crashed, crashed,
                       f"welcomed {welcomed}; after {doc_name}: state {state.state}, alive {alive}, "
                       f"last error {str(state.last_error)[:80]}")

    return fn


def _send_big(ws):
    ws.send(b"\x80" * (20 << 20))


def _send_garbage(ws):
    from client_app import protocol as P

    for frame in (b"\xc1\xc1", "text", P.pack({"type": "ack"}), P.pack({"type": "model", "version": "x"}),
                  P.pack({"type": "status", "status": 5}), P.pack({"type": "ack", "id": 7, "wait_ms": 10**12})):
        ws.send(frame)


REGISTRY.add("hostile_server", "oversized_message", "a 20 MiB message from the server: refused by size, the client lives on",
             _connection_survives(_send_big, "a 20 MiB frame"))
REGISTRY.add("hostile_server", "garbage_messages", "garbage, text and mistyped messages from the server: ignored, no crash",
             _connection_survives(_send_garbage, "garbage"))


def _huge_wait(ws):
    from client_app import protocol as P

    ws.send(P.pack({"type": "reject", "id": None, "code": "rate_limited", "message": "x", "wait_ms": 10**15}))


def huge_wait(world) -> Verdict:
    from client_app.connection import Connection

    relay = FakeRelay(after=_huge_wait)
    connection = Connection(server_url=relay.url, token=TOKEN, machine="rig")
    try:
        connection.start()
        connection.wait_for_welcome(5)
        time.sleep(1.0)
        hold = connection.hold_remaining
    finally:
        connection.stop()
        relay.close()
    hold_s = hold() if callable(hold) else hold
    return Verdict(hold_s <= 3600, hold_s > 3600, f"the client holds off {hold_s:.0f} s")


REGISTRY.add("hostile_server", "wait_ms_1e15", "a reject asking to wait 10^15 ms: the client caps its hold",
             huge_wait)
