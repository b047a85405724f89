"""Release signatures: a wheel verifies only with the signature the maintainers' key made."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_app import release


def test_keygen_sign_verify_round_trip_through_the_cli(tmp_path, capsys):
    key_file = tmp_path / "release.key"
    assert release.main(["keygen", "--out", str(key_file)]) == 0
    public = capsys.readouterr().out.split("public key (put it in client_app/release_key.py): ")[1].strip()
    assert key_file.stat().st_mode & 0o777 == 0o600
    wheel = tmp_path / "soulsai_client-9.9.9-py3-none-any.whl"
    wheel.write_bytes(b"PK wheel bytes" * 100)
    assert release.main(["sign", str(wheel), "--key", str(key_file)]) == 0
    assert len((tmp_path / (wheel.name + ".sig")).read_bytes()) == 64
    assert release.main(["verify", str(wheel), "--public-key", public]) == 0
    assert "signature OK" in capsys.readouterr().out
    # The built-in key is not this throwaway one: the same wheel is refused by default.
    assert release.main(["verify", str(wheel)]) == 2
    assert "not a SoulsAI release" in capsys.readouterr().err
    # keygen never overwrites a key.
    assert release.main(["keygen", "--out", str(key_file)]) == 2


def test_a_changed_byte_or_another_key_is_refused():
    key = Ed25519PrivateKey.generate()
    data = b"wheel" * 1000
    signature = release.sign(data, key)
    release.verify(data, signature, key.public_key())
    with pytest.raises(release.SignatureError, match="does not match"):
        release.verify(data[:-1] + b"X", signature, key.public_key())
    with pytest.raises(release.SignatureError, match="does not match"):
        release.verify(data, release.sign(data, Ed25519PrivateKey.generate()), key.public_key())
    with pytest.raises(release.SignatureError, match="64"):
        release.verify(data, signature[:10], key.public_key())


def test_the_built_in_key_parses():
    assert release.public_key_text(release.trusted_key()) == release.public_key_text(
        release.public_key_from_text(__import__("client_app.release_key").release_key.RELEASE_PUBLIC_KEY)
    )
