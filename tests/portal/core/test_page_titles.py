"""Every page's title is plain words: a browser tab or a bookmark named "Leaderboard" rather than a
whole card of HTML (two templates once had a section pasted into their title block)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TEMPLATES = Path(__file__).resolve().parents[3] / "portal" / "templates"
TITLE_BLOCK = re.compile(r"{% block head_title %}(.*?){% endblock %}", re.S)


def test_every_templates_title_block_is_one_line_of_text():
    titled = 0
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text()
        for block in TITLE_BLOCK.findall(text):
            titled += 1
            assert "\n" not in block and "<" not in block, f"{path.relative_to(TEMPLATES)}: {block[:120]!r}"
    assert titled >= 10


@pytest.mark.django_db
@pytest.mark.parametrize("url, title", [("/leaderboard/", "Leaderboard"), ("/accounts/profile/", "Your profile")])
def test_the_rendered_title_is_the_pages_name(client, django_user_model, url, title):
    user = django_user_model.objects.create_user("reader", "r@example.com", "pw-12345678")
    client.force_login(user)
    html = client.get(url).content.decode()
    rendered = re.search(r"<title>(.*?)</title>", html, re.S).group(1)
    assert rendered.strip().startswith(title) and "<" not in rendered, rendered[:200]
