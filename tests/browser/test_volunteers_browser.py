"""Recognition in a real browser (headless Chromium, live uvicorn): a volunteer finds their public page
from the leaderboard, founds and leaves a team, hides their page; every page fits a 390 px phone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from selenium.webdriver.common.by import By

from portal.campaigns.models import Campaign
from portal.leaderboards.models import Contribution
from portal.machines.services import token_create
from tests.browser.conftest import screenshot
from tests.browser.test_portal_browser import until

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(driver, server, user) -> None:
    """A session made by Django's test client, handed to the browser (the login page is tested elsewhere)."""
    client = Client()
    client.force_login(user)
    driver.get(server.url + "/privacy/")
    driver.add_cookie(
        {"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value}
    )


def fits_a_phone(driver, url: str, name: str) -> None:
    """At 390 px the page scrolls only downwards (wide tables scroll inside their own box)."""
    driver.set_window_size(390, 900)
    try:
        driver.get(url)
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        screenshot(driver, f"volunteers-{name}-390")
        wide = driver.execute_script(
            "const w = document.documentElement.clientWidth; return [...document.querySelectorAll('body *')]"
            ".filter(e => e.getBoundingClientRect().right > w + 1 && !(e.parentElement && e.parentElement.closest('.table-wrap')))"
            ".slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"
        )
        assert overflow <= 0, f"{url} scrolls sideways by {overflow}px at 390 px: {wide}"
    finally:
        driver.set_window_size(1280, 1000)


def test_a_volunteer_finds_their_page_founds_a_team_and_hides_their_page(
    asgi_server, module_browser, django_user_model
):
    server, driver = asgi_server, module_browser
    game = Campaign.objects.create(
        slug="iudex-real", name="Iudex (real game)", env_id="SoulsGymIudex-v0", status=Campaign.Status.RUNNING
    )
    alice = django_user_model.objects.create_user(username="alice", password="a-long-passphrase-1")
    bob = django_user_model.objects.create_user(username="bob", password="a-long-passphrase-2")
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    Contribution.objects.create(campaign=game, user=alice, hour=hour, samples=36_000, episodes=12, wins=3)
    Contribution.objects.create(
        campaign=game, user=bob, hour=hour - timedelta(days=2), samples=600, episodes=1
    )
    token_create(user=alice, campaign=game, name="gaming-pc")

    driver.get(server.url + "/leaderboard/")
    driver.find_element(By.LINK_TEXT, "alice").click()
    until(
        driver,
        lambda: driver.find_element(By.ID, "volunteer-name").text == "alice",
        30,
        "alice's public page",
    )
    assert driver.find_element(By.ID, "credit").text == "3,600"
    assert driver.find_element(By.ID, "rank").text == "#1"
    assert driver.find_element(By.ID, "machines").text == "1"
    assert {"top 1%", "one hour"} <= {
        b.text.lower() for b in driver.find_elements(By.CSS_SELECTOR, "#badges .badge")
    }
    assert "36,000" in driver.find_element(By.ID, "volunteer-campaigns").text
    assert "gaming-pc" not in driver.page_source
    fits_a_phone(driver, server.url + "/volunteers/alice/", "volunteer")
    fits_a_phone(driver, server.url + "/leaderboard/", "leaderboard")

    log_in(driver, server, alice)
    driver.get(server.url + "/teams/")
    driver.find_element(By.ID, "team-name").send_keys("Ashen Ones")
    driver.find_element(By.CSS_SELECTOR, "#team-create button[type=submit]").click()
    until(
        driver,
        lambda: driver.find_element(By.ID, "team-name").text == "Ashen Ones",
        30,
        "the new team's page",
    )
    assert "alice" in driver.find_element(By.ID, "team-members").text
    fits_a_phone(driver, server.url + "/teams/ashen-ones/", "team")
    driver.find_element(By.ID, "team-leave").click()
    until(driver, lambda: "You left Ashen Ones" in driver.page_source, 30, "leaving the team")
    fits_a_phone(driver, server.url + "/teams/", "teams")

    driver.get(server.url + "/accounts/profile/")
    driver.find_element(By.ID, "hide-page").click()
    until(
        driver, lambda: driver.find_element(By.ID, "page-visibility").text == "hidden", 30, "the page hidden"
    )
    fits_a_phone(driver, server.url + "/accounts/profile/", "profile")
    driver.delete_all_cookies()
    driver.get(server.url + "/volunteers/alice/")
    assert "alice" not in driver.find_element(By.TAG_NAME, "h1").text  # the 404 page
    driver.get(server.url + "/leaderboard/")  # at once: hiding drops the cached boards
    assert "hidden volunteer" in driver.find_element(By.ID, "leaderboard").text
    assert driver.find_elements(By.LINK_TEXT, "alice") == []
