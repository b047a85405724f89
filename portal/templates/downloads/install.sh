{% autoescape off %}#!/bin/sh
# SoulsAI client installer for Linux and macOS (the POSIX twin of install.ps1), from {{ server_url }}
#   curl -fsSL {{ server_url }}/download/install.sh | sh
# Installs CPython {{ python_version }} (python-build-standalone, pinned sha256) and the client into its own
# folder, verifying the client wheel's Ed25519 signature against the release key written below first.
# Environment: SOULSAI_HOME (the folder), SOULSAI_BIN_DIR (where the commands are linked),
# SOULSAI_PYTHON_URL + SOULSAI_PYTHON_SHA256 (another copy of the interpreter archive, e.g. a mirror);
# pip's own PIP_INDEX_URL / PIP_NO_INDEX / PIP_FIND_LINKS choose where the dependencies come from.
set -eu

SERVER="${SOULSAI_SERVER:-{{ server_url }}}"
RELEASE_KEY="{{ release_key }}"
DEST="${SOULSAI_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/soulsai-client}"
BIN_DIR="${SOULSAI_BIN_DIR:-$HOME/.local/bin}"

say() { printf 'soulsai-install: %s\n' "$*"; }
die() { printf 'soulsai-install: error: %s\n' "$*" >&2; exit 1; }
fetch() { curl -fsSL --retry 2 -o "$2" "$1" || die "could not download $1"; }
sha256() { if command -v sha256sum >/dev/null; then sha256sum "$1"; else shasum -a 256 "$1"; fi | cut -d' ' -f1; }

command -v curl >/dev/null || die "curl is needed"
case "$(uname -s)-$(uname -m)" in
{% for key, build in posix_builds %}  {{ key }}) URL="{{ build.url }}"; SHA="{{ build.sha256 }}" ;;
{% endfor %}  *) die "no interpreter for $(uname -s) $(uname -m): install Python 3.11 and the wheel by hand ({{ server_url }}/download/)" ;;
esac
PYTHON_URL="${SOULSAI_PYTHON_URL:-$URL}"
PYTHON_SHA256="${SOULSAI_PYTHON_SHA256:-$SHA}"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT INT TERM
mkdir -p "$DEST"

say "downloading Python {{ python_version }} ($PYTHON_URL)"
fetch "$PYTHON_URL" "$TMP/python.tar.gz"
[ "$(sha256 "$TMP/python.tar.gz")" = "$PYTHON_SHA256" ] || die "the interpreter archive's sha256 is not $PYTHON_SHA256: refused"
mkdir "$TMP/unpacked"
tar -xzf "$TMP/python.tar.gz" -C "$TMP/unpacked"
[ -x "$TMP/unpacked/python/bin/python3" ] || die "the archive holds no python/bin/python3"
rm -rf "$DEST/python"
mv "$TMP/unpacked/python" "$DEST/python"
PY="$DEST/python/bin/python3"

say "reading the current client from $SERVER"
fetch "$SERVER/download/release.json" "$TMP/release.json"
INFO="$("$PY" - "$TMP/release.json" <<'PYEOF'
import json, re, sys
r = json.load(open(sys.argv[1]))
if not r.get("signature_url"):
    sys.exit("soulsai-install: error: client %s on the server is not signed yet; try again later" % r.get("version"))
if not re.fullmatch(r"soulsai_client-[0-9][0-9A-Za-z.+_]{0,40}-py3-none-any\.whl", r["filename"]):
    sys.exit("soulsai-install: error: the server offers no client wheel")
print(r["version"], r["filename"], r["url"], r["signature_url"], r["sha256"])
PYEOF
)" || exit 1
set -- $INFO
VERSION="$1"; WHEEL="$TMP/$2"
fetch "$SERVER$3" "$WHEEL"
fetch "$SERVER$4" "$WHEEL.sig"
[ "$(sha256 "$WHEEL")" = "$5" ] || die "the wheel is not the file the server announced (sha256)"

# The signature, checked with the key in this script before anything of the wheel runs or is installed.
say "checking the signature of client $VERSION"
"$PY" -m pip install --quiet --disable-pip-version-check "cryptography>=42" || die "could not install cryptography"
"$PY" - "$WHEEL" "$RELEASE_KEY" <<'PYEOF' || die "refused client $VERSION: not installed"
import base64, sys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
wheel = open(sys.argv[1], "rb").read()
signature = open(sys.argv[1] + ".sig", "rb").read()
try:
    Ed25519PublicKey.from_public_bytes(base64.b64decode(sys.argv[2])).verify(signature, wheel)
except (InvalidSignature, ValueError):
    sys.exit("soulsai-install: the signature does not match the release key: this is not a SoulsAI release")
PYEOF

say "installing client $VERSION into $DEST"
"$PY" -m pip install --quiet --disable-pip-version-check "$WHEEL" || die "pip could not install the client"

mkdir -p "$BIN_DIR"
for command in soulsai-client soulsai-client-gui; do
  ln -sf "$DEST/python/bin/$command" "$BIN_DIR/$command"
done
if [ "$(uname -s)" = Linux ]; then
  apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
  mkdir -p "$apps"
  printf '[Desktop Entry]\nType=Application\nName=SoulsAI client\nExec=%s\nTerminal=false\nCategories=Game;\n' \
    "$DEST/python/bin/soulsai-client-gui" > "$apps/soulsai-client.desktop"
fi
say "installed soulsai-client $VERSION: run soulsai-client-gui (linked in $BIN_DIR)"
{% endautoescape %}
