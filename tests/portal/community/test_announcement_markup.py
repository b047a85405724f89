"""Announcements render links and emphasis, escape everything else, and reach clients as plain text."""

from __future__ import annotations

import pytest

from portal.community.markup import plain, render
from portal.community.models import Announcement

pytestmark = pytest.mark.django_db

BODY = (
    "Iudex is **down** to *12%* HP! Watch [the fight](https://souls.example/campaigns/iudex/) or "
    "https://souls.example/x_y_z.\n\n<script>alert(1)</script> [bad](javascript:alert(1)) snake_case_name 2*3*4"
)


def test_links_and_emphasis_render_and_html_stays_text():
    html = str(render(BODY))
    assert "<strong>down</strong>" in html and "<em>12%</em>" in html
    assert '<a href="https://souls.example/campaigns/iudex/" rel="nofollow noopener">the fight</a>' in html
    assert '<a href="https://souls.example/x_y_z" rel="nofollow noopener">https://souls.example/x_y_z</a>.' in html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "javascript:" not in html.split("[bad]")[0] and 'href="javascript' not in html
    assert "snake_case_name 2*3*4" in html  # no emphasis inside words or sums
    assert html.count("<p>") == 2


def test_the_home_page_and_the_api_show_it(client):
    Announcement.objects.create(title="Iudex falls", body=BODY, published=True)
    home = client.get("/").content.decode()
    assert "<strong>down</strong>" in home and "&lt;script&gt;" in home and "<script>alert(1)" not in home
    data = client.get("/api/announcements/").json()["announcements"]
    assert data[0]["title"] == "Iudex falls"
    assert data[0]["text"].startswith("Iudex is down to 12% HP! Watch the fight (https://souls.example/campaigns/iudex/)")
    assert plain("**a** [b](https://c.example/)") == "a b (https://c.example/)"
