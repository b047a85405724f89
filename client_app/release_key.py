"""The SoulsAI release public key (Ed25519, base64 of its 32 raw bytes).

The client installs an update only if its signature verifies against this key
(``client_app.release``). The matching private key is kept by the maintainers, offline; replacing
this key means shipping a client, signed with the old key, that carries the new one
(docs/releases.md, "Rotating the key").
"""

RELEASE_PUBLIC_KEY = "JwOvepXS5HClCrzv6PKlSHrbBuWQXpprIoMdKMPSAm8="
