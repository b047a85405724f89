"""The Dark Souls III set-up: one source (client_app.setup_guide) for the download page and docs/client.md.

The key table is SoulsGym 1.1.0's (its setup guide, docs/getting_started/setup.rst at tag v1.1.0),
quoted here once more so that a change to either side shows up as a failing test.
"""

from __future__ import annotations

import html
import re

import pytest

from client_app import setup_guide as G

# SoulsGym 1.1.0, docs/getting_started/setup.rst, "Key settings" (Type, Keyboard, Mouse), and its
# soulsgym/core/data/darksouls3/keys.yaml bindings: forward w, backward s, left a, right d,
# lightattack l, roll ' ', lockon q, interact e, cameraup j, cameradown k, cameraleft o,
# cameraright p, heavyattack h, parry m.
SOULSGYM_1_1_0_KEYS = [
    ("Run (forward)", "W", ""), ("Run (backward)", "S", ""), ("Run (left)", "A", ""),
    ("Run (right)", "D", ""), ("Dash/Backstep/Roll", "Space", ""), ("Jump", "Space", ""),
    ("Tilt camera up", "J", ""), ("Tilt camera down", "K", ""), ("Tilt camera left", "O", ""),
    ("Tilt camera right", "P", ""), ("Camera reset / Lock-on", "Q", ""),
    ("Attack (right hand)", "L", "---"), ("Strong attack (right hand)", "H", ""),
    ("Attack (left hand)", "---", ""), ("Strong attack (left hand)", "M", ""), ("Use item", "", ""),
    ("Interact", "E", ""), ("Two-hand weapon", "", ""),
]  # fmt: skip


def test_the_key_table_is_soulsgyms_with_the_mouse_attack_unbound():
    assert list(G.KEY_TABLE) == SOULSGYM_1_1_0_KEYS
    mouse = {action: m for action, _, m in G.KEY_TABLE}
    assert mouse["Attack (right hand)"] == G.UNSET
    assert "mouse attack" in G.KEY_TABLE_NOTE and "unbound" in G.KEY_TABLE_NOTE


def test_the_steps_say_what_soulsgym_needs_in_an_order_that_works():
    text = " ".join(f"{h}. {t}" for h, t in G.STEPS)
    for needed in ("64-bit Python 3.11", "ASCII", "1.15.2", "Play Offline", "Knight", "kills it",
                   "overwrites its stats", "Windowed", "800x450", "not a minimum", "100%",
                   "English (US)", "only", "Antivirus", "SpeedHackDLL.dll", "window_capture.pyd"):  # fmt: skip
        assert needed in text, needed
    headings = [h for h, _ in G.STEPS]
    # Python before the game, the save before the bindings, the layout before playing.
    assert headings.index(G.KEY_TABLE_AFTER) > 3 and headings[-1] == "While it plays"
    assert "default" not in G.STEPS[headings.index(G.KEY_TABLE_AFTER)][1].replace("defaults:", "")


def test_the_windows_install_steps_come_in_an_order_that_works():
    headings = [h for h, _, _ in G.INSTALL_STEPS]
    text = " ".join(f"{h} {t} {' '.join(c)}" for h, t, c in G.INSTALL_STEPS)
    # Python (with Tk) before any command uses it; the commands run where the wheel was saved.
    assert headings[0].startswith("Python 3.11") and "tcl/tk" in G.INSTALL_STEPS[0][1]
    commands = [c for _, _, cs in G.INSTALL_STEPS for c in cs]
    assert commands.index("cd $HOME\\Downloads") < commands.index('py -3.11 -m pip install ".\\{wheel}[keyring]"')
    # The plain install needs no activation script; the venv's needs the execution policy first.
    venv = [c for h, _, cs in G.INSTALL_STEPS if "virtual environment" in h for c in cs]
    assert venv.index("Set-ExecutionPolicy -Scope CurrentUser -ExecutionPolicy RemoteSigned") < venv.index(
        ".\\soulsai\\Scripts\\Activate.ps1"
    )
    assert "Activate" not in " ".join(commands[: commands.index("soulsai-client-gui")])
    assert "execution policy" in text


def test_docs_client_md_holds_exactly_the_generated_blocks():
    install = G.docs_block(G.DOCS.read_text(encoding="utf-8"), G.INSTALL_BEGIN, G.INSTALL_END)
    assert install == G.install_markdown(), "docs/client.md is stale: run python -m client_app.setup_guide --write"


def test_docs_client_md_holds_exactly_the_generated_block():
    block = G.docs_block(G.DOCS.read_text(encoding="utf-8"))
    assert block is not None, "docs/client.md lost its setup-guide markers"
    assert block == G.markdown(), "docs/client.md is stale: run python -m client_app.setup_guide --write"
    for action, key, mouse in G.KEY_TABLE:
        assert f"| {action} | {key} | {mouse} |" in block


def test_the_html_has_every_step_and_the_key_table_escaped():
    fragment = G.html()
    text = html.unescape(re.sub(r"<[^>]+>", "", fragment))
    for heading, step in G.STEPS:
        assert G.plain(heading) in text and G.plain(step) in text
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", fragment)
    assert [tuple(html.unescape(c) for c in row) for row in rows] == SOULSGYM_1_1_0_KEYS
    assert "<script" not in fragment and fragment.count("<li>") == len(G.STEPS)


@pytest.mark.django_db
def test_the_download_page_shows_the_same_steps(client, monkeypatch):
    from portal.downloads import services, views

    wheel = services.WheelInfo(
        filename="soulsai_client-0.0.0-py3-none-any.whl", version="0.0.0", sha256="0" * 64,
        size_bytes=1, name="client-wheel/x/soulsai_client-0.0.0-py3-none-any.whl",
    )  # fmt: skip
    monkeypatch.setattr(views, "client_wheel_info", lambda: wheel)  # the wheel's build is tested elsewhere
    from django.urls import reverse

    page = client.get(reverse("downloads:page")).content.decode()
    assert G.html() in page
    assert G.install_html(wheel.filename) in page  # the same Windows steps as docs/client.md, this wheel's name
    assert "Restore the default keyboard" not in page and "is enough" not in page
