"""The client wheel: only client_app inside, no server dependencies, served as built; the download page."""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command

import client_app
from portal.downloads import services
from portal.machines.services import token_create

SERVER_PACKAGES = ("django", "celery", "torch", "channels", "redis", "uvicorn", "whitenoise", "allauth")


@pytest.fixture(scope="session")
def wheel() -> services.WheelInfo:
    """Built once per session (pip takes a few seconds)."""
    return services.client_wheel_build()


def stored_bytes(wheel: services.WheelInfo) -> bytes:
    with default_storage.open(wheel.name, "rb") as handle:
        return handle.read()


def test_wheel_contains_only_the_client(wheel):
    assert wheel.filename == f"soulsai_client-{client_app.__version__}-py3-none-any.whl"
    # In the default storage (every web host reads the same one), under its version and sha256.
    assert wheel.name == f"client-wheel/{wheel.version}/{wheel.sha256}/{wheel.filename}"
    dist_info = f"soulsai_client-{client_app.__version__}.dist-info/"
    with zipfile.ZipFile(io.BytesIO(stored_bytes(wheel))) as zf:
        names = zf.namelist()
        assert "client_app/__init__.py" in names
        # Every module of the client's packages, the protocol package's too: a module missing from
        # the wheel is an ImportError on a volunteer's machine.
        # Every package under client_app/ is found on disk, so a new one cannot be left out of
        # pyproject's list unnoticed.
        source = Path(client_app.__file__).parent
        for module in sorted(source.rglob("*.py")):
            if "__pycache__" not in module.parts and (module.parent / "__init__.py").exists():
                name = module.relative_to(source.parent).as_posix()
                assert name in names, name
        assert all(n.startswith(("client_app/", dist_info)) for n in names), names
        metadata = zf.read(dist_info + "METADATA").decode()
        entry_points = zf.read(dist_info + "entry_points.txt").decode()
    requires = [
        line.split(":", 1)[1].strip().lower()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    ]
    assert any(r.startswith("numpy") for r in requires)
    for package in SERVER_PACKAGES:
        assert not any(r.startswith(package) for r in requires), (package, requires)
    assert "soulsai-client = client_app.cli:main" in entry_points


def test_build_leaves_no_setuptools_leftovers_and_writes_the_manifest(wheel):
    base = Path(settings.BASE_DIR)
    assert not (base / "build").exists()
    assert not list(base.glob("*.egg-info"))
    info = services.client_wheel_info()
    assert info is not None
    assert (info.filename, info.version, info.sha256, info.size_bytes) == (
        wheel.filename,
        client_app.__version__,
        hashlib.sha256(stored_bytes(wheel)).hexdigest(),
        default_storage.size(wheel.name),
    )
    assert default_storage.exists(f"client-wheel/{wheel.version}/manifest.json")


def test_ensure_reuses_the_current_wheel(wheel, monkeypatch):
    before = default_storage.get_modified_time(wheel.name)
    monkeypatch.setattr(services, "_pip_wheel", lambda *a, **kw: pytest.fail("built although stored"))
    assert services.client_wheel_ensure() == services.client_wheel_info() == wheel
    assert services.client_wheel_build() == wheel  # building a stored version is a no-op
    assert default_storage.get_modified_time(wheel.name) == before


def test_ensure_rebuilds_when_the_manifest_is_for_another_version(wheel, monkeypatch):
    monkeypatch.setattr(services, "client_version", lambda: "99.0")
    calls = []
    monkeypatch.setattr(services, "_build_locked", lambda **kw: calls.append(kw) or wheel)
    services.client_wheel_ensure()
    assert len(calls) == 1


@pytest.mark.django_db
def test_download_page_shows_the_wheel_and_the_file_matches(client, wheel):
    response = client.get("/download/")
    assert response.status_code == 200
    html = response.content.decode()
    assert wheel.version in html and wheel.filename in html and wheel.sha256 in html
    assert f'py -3.11 -m pip install ".\\{wheel.filename}[keyring]"' in html and "[keyring,box2d]" in html
    assert f'python3 -m pip install "{wheel.filename}[keyring]"' in html
    # The token is pasted into SOULSAI_TOKEN when asked, never typed into a command (history, ps).
    assert "soulsai-client --server http://testserver --save" in html and "read -rs SOULSAI_TOKEN" in html
    assert "--token" not in html
    assert "join a campaign" in html.lower()

    response = client.get(f"/download/{wheel.filename}")
    assert response.status_code == 200
    assert f'attachment; filename="{wheel.filename}"' == response["Content-Disposition"]
    data = b"".join(response.streaming_content)
    assert data == stored_bytes(wheel)
    assert hashlib.sha256(data).hexdigest() == wheel.sha256 == response["X-Content-SHA256"]


@pytest.mark.django_db
def test_other_file_names_are_404(client, wheel):
    assert client.get("/download/soulsai_client-0.0.1-py3-none-any.whl").status_code == 404
    assert client.get("/download/manifest.json").status_code == 404
    assert client.get("/download/..%2Fsecret_key").status_code == 404


def test_management_command_prints_the_wheel(wheel, capsys):
    call_command("build_client_wheel", "--if-needed")
    out = capsys.readouterr().out
    assert wheel.filename in out and wheel.sha256 in out and client_app.__version__ in out


def test_a_failed_build_says_why(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "pyproject.toml").write_text('[project]\nname = "broken"\nversion = "not a version"\n')
    with pytest.raises(services.WheelBuildError, match="pip wheel failed"):
        services._pip_wheel(source, tmp_path, timeout=120)


@pytest.mark.django_db
def test_download_page_without_a_wheel_is_a_readable_503(client, monkeypatch):
    # The page never builds (the build runs once, before: it may have failed, "pip wheel failed
    # (exit 1)"): no wheel in storage for this version is a readable 503.
    monkeypatch.setattr("portal.downloads.views.client_wheel_info", lambda: None)
    response = client.get("/download/")
    assert response.status_code == 503
    assert "could not be built" in response.content.decode()


@pytest.mark.django_db
def test_download_page_explains_windows_set_up_doctor_and_hints_the_players_token(
    alice_client, alice, cartpole_campaign
):
    token, _ = token_create(user=alice, campaign=cartpole_campaign, name="gaming-pc")
    response = alice_client.get("/download/")
    assert response.status_code == 200
    html = response.content.decode()
    for expected in (
        "Windowed",
        "Key bindings",
        "offline",
        "Game version",
        "doctor --server http://testserver",
        f"sai_{token.prefix}_",
        "gaming-pc",
        response.context["wheel"].sha256,
    ):
        assert expected in html, expected


@pytest.mark.django_db
def test_the_page_never_builds_the_wheel(client, settings, tmp_path, monkeypatch):
    settings.STORAGES = {  # a storage with no wheel in it
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    monkeypatch.setattr(services, "_pip_wheel", lambda *a, **kw: pytest.fail("built at request time"))
    response = client.get("/download/")
    assert response.status_code == 503
    assert "being prepared" in response.content.decode()
    assert (
        client.get(f"/download/soulsai_client-{client_app.__version__}-py3-none-any.whl").status_code == 404
    )


def test_the_first_manifest_of_a_version_wins(wheel):
    # Another host built the same version at the same time and got other bytes (zip timestamps):
    # its manifest is not written, its file is removed, and it is told of the stored wheel.
    other_sha = "0" * 64
    other = replace(
        wheel, sha256=other_sha, name=f"client-wheel/{wheel.version}/{other_sha}/{wheel.filename}"
    )
    default_storage.save(other.name, ContentFile(b"other bytes"))
    assert services._manifest_write(other) == wheel == services.client_wheel_info()
    assert not default_storage.exists(other.name)
    assert default_storage.listdir(f"client-wheel/{wheel.version}")[1] == ["manifest.json"]
