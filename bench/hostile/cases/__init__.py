"""The cases, one module per category; importing this package registers them all."""

from hostile.cases import (  # noqa: F401
    amplification,
    browser,
    flood,
    forged_eval,
    handshake,
    hostile_server,
    http,
    identity,
    lying,
    malformed,
    storage,
)
