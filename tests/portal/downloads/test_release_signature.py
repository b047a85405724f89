"""The portal serves the maintainers' signature of the client wheel and announces the newest client."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from client_app import release
from portal.downloads import services
from tests.portal.downloads.test_downloads import stored_bytes, wheel  # noqa: F401 - the session's wheel fixture


@pytest.fixture
def unsigned(wheel):  # noqa: F811
    yield wheel
    name = wheel.name + release.SIGNATURE_SUFFIX
    if default_storage.exists(name):
        default_storage.delete(name)


def test_release_json_says_unsigned_until_a_signature_is_stored_then_serves_it(client, unsigned):
    info = unsigned
    answer = client.get("/download/release.json").json()
    assert answer == {
        "version": info.version, "filename": info.filename, "sha256": info.sha256,
        "size_bytes": info.size_bytes, "url": f"/download/{info.filename}", "signature_url": None,
    }  # fmt: skip
    assert client.get(f"/download/{info.filename}.sig").status_code == 404

    key = Ed25519PrivateKey.generate()
    signature = release.sign(stored_bytes(info), key)
    services.client_signature_store(info=info, signature=signature)
    answer = client.get("/download/release.json").json()
    assert answer["signature_url"] == f"/download/{info.filename}.sig"
    response = client.get(answer["signature_url"])
    assert response.status_code == 200 and response.content == signature
    release.verify(stored_bytes(info), response.content, key.public_key())


def test_the_command_refuses_a_signature_not_made_with_the_built_in_release_key(unsigned, tmp_path):
    info = unsigned
    sig = tmp_path / "info.sig"
    sig.write_bytes(release.sign(stored_bytes(info), Ed25519PrivateKey.generate()))
    with pytest.raises(CommandError, match="not a SoulsAI release"):
        call_command("add_client_signature", str(sig))
    sig.write_bytes(b"short")
    with pytest.raises(CommandError, match="has 5 bytes, an Ed25519 signature has 64"):
        call_command("add_client_signature", str(sig))
    assert services.client_signature(info) is None
