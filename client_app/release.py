"""Release signatures: Ed25519 over the client wheel, so only the maintainers can ship code to volunteers.

The portal serves the wheel and ``<wheel>.sig`` (64 raw bytes); the client installs a downloaded wheel
only if the signature verifies against :data:`client_app.release_key.RELEASE_PUBLIC_KEY`, which ships
inside the client. The private key stays on a maintainer's machine, never on a server: a server that
is broken into can serve any wheel it likes, but not one that verifies (a sha256 published by the same
server would protect nothing). docs/releases.md describes the procedure.

Maintainers' commands::

    python -m client_app.release keygen --out soulsai-release.key   # once; prints the public key
    python -m client_app.release sign dist/soulsai_client-0.3.0-py3-none-any.whl --key soulsai-release.key
    python -m client_app.release verify dist/soulsai_client-0.3.0-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNATURE_BYTES = 64  # an Ed25519 signature, raw
SIGNATURE_SUFFIX = ".sig"


class SignatureError(Exception):
    """A wheel's signature is missing, malformed or made with another key; the message says which."""


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """The public key written as base64 of its 32 raw bytes (as ``keygen`` prints it)."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise SignatureError(f"not an Ed25519 public key (base64 of 32 bytes): {exc}") from None


def public_key_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def trusted_key() -> Ed25519PublicKey:
    """The release key built into this client."""
    from client_app.release_key import RELEASE_PUBLIC_KEY

    return public_key_from_text(RELEASE_PUBLIC_KEY)


def sign(data: bytes, private_key: Ed25519PrivateKey) -> bytes:
    return private_key.sign(data)


def verify(data: bytes, signature: bytes, public_key: Ed25519PublicKey | None = None) -> None:
    """Raise :class:`SignatureError` unless ``signature`` is the release key's signature of ``data``.

    ``public_key`` defaults to the built-in release key; only tests pass another (a parameter, not a
    setting, so nothing a server sends or a config file holds can change which key is trusted).
    """
    if len(signature) != SIGNATURE_BYTES:
        raise SignatureError(
            f"the signature has {len(signature)} bytes, an Ed25519 signature has {SIGNATURE_BYTES}"
        )
    key = public_key if public_key is not None else trusted_key()
    try:
        key.verify(signature, data)
    except InvalidSignature:
        raise SignatureError(
            "the signature does not match the release key: this is not a SoulsAI release"
        ) from None


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path} is not an Ed25519 private key")
    return key


def keygen(out: Path) -> str:
    """Write a new private key to ``out`` (mode 0600, never overwriting); its public key as text."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return public_key_text(key.public_key())


def sign_file(wheel: Path, key_path: Path) -> Path:
    """Write ``<wheel>.sig``; its path."""
    signature = sign(wheel.read_bytes(), load_private_key(key_path))
    out = wheel.with_name(wheel.name + SIGNATURE_SUFFIX)
    out.write_bytes(signature)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m client_app.release", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("keygen", help="make a release key pair (keep the private key offline)")
    gen.add_argument("--out", type=Path, required=True, help="where to write the private key (PEM, 0600)")
    signer = commands.add_parser("sign", help="write <wheel>.sig with the private key")
    signer.add_argument("wheel", type=Path)
    signer.add_argument("--key", type=Path, required=True, help="the private key file")
    checker = commands.add_parser("verify", help="check <wheel>.sig against the built-in release key")
    checker.add_argument("wheel", type=Path)
    checker.add_argument("--public-key", help="check against this public key (base64) instead")
    args = parser.parse_args(argv)
    try:
        if args.command == "keygen":
            public = keygen(args.out)
            print(f"private key written to {args.out}: keep it offline, never on a server")
            print(f"public key (put it in client_app/release_key.py): {public}")
        elif args.command == "sign":
            print(f"wrote {sign_file(args.wheel, args.key)}")
        else:
            key = public_key_from_text(args.public_key) if args.public_key else None
            signature = args.wheel.with_name(args.wheel.name + SIGNATURE_SUFFIX).read_bytes()
            verify(args.wheel.read_bytes(), signature, key)
            print(f"{args.wheel.name}: signature OK")
    except (OSError, ValueError, SignatureError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
