"""The portal in a real browser (headless Chromium) against the real ASGI server, worker and client.

Every wait polls for what a person would see, with generous limits: CI machines are small and busy.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By

from portal.campaigns.models import Campaign
from portal.campaigns.services import campaign_create, campaign_launch
from portal.downloads.services import client_wheel_ensure, client_wheel_info
from portal.machines.services import token_create
from tests.browser.conftest import screenshot
from tests.conftest import FAST_DQN, api_get, start_client, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-and-unusual-passphrase-42"


def until(driver, predicate, timeout: float, what: str, *procs):
    """wait_for, but a page that is changing under us (stale elements, navigation) just means 'not yet'."""

    def attempt():
        try:
            return predicate()
        except WebDriverException:
            return None

    try:
        return wait_for(attempt, timeout, what, *procs, interval=0.5)
    except AssertionError:
        screenshot(driver, "failure-" + re.sub(r"\W+", "-", what)[:60])
        raise


def fill(driver, **fields: str) -> None:
    for name, value in fields.items():
        element = driver.find_element(By.NAME, name)
        element.clear()
        element.send_keys(value)


def submit(driver, form_css: str = "main form") -> None:
    driver.find_element(By.CSS_SELECTOR, f"{form_css} button[type=submit]").click()


def log_in(driver, server, username: str, password: str) -> None:
    driver.get(server.url + "/accounts/login/")
    fill(driver, login=username, password=password)
    submit(driver)
    until(driver, lambda: "/accounts/profile/" in driver.current_url, 60, "the login to land on the profile")


def test_a_visitor_signs_up_joins_sees_the_token_and_downloads_the_client(asgi_server, browser):
    campaign = campaign_create(slug="browser-join", name="Browser join", env_id="CartPole-v1")
    campaign_launch(campaign=campaign)
    server = asgi_server

    browser.get(server.url + "/")
    assert "Teach an AI to beat Iudex Gundyr" in browser.page_source
    screenshot(browser, "home-desktop")
    screenshot(browser, "home-phone", width=390)

    browser.get(server.url + "/accounts/signup/")
    fill(browser, email="newbie@example.com", username="newbie", password1=PASSWORD, password2=PASSWORD)
    submit(browser)
    until(browser, lambda: "/accounts/profile/" in browser.current_url, 60, "sign-up to land on the profile")
    assert "newbie" in browser.page_source

    browser.get(server.url + campaign.get_absolute_url())
    fill(browser, machine_name="browser-rig")
    submit(browser, "#join form")
    token = until(
        browser,
        lambda: browser.find_element(By.CSS_SELECTOR, "pre.token code").text.strip(),
        60,
        "the token page",
    )
    assert token.startswith("sai_")
    commands = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "pre.code code")]
    assert any(f"soulsai-client --server {server.url} --save" in c and "SOULSAI_TOKEN" in c for c in commands)
    assert not any("--token" in c for c in commands)  # the token is pasted when asked, never on a command line
    screenshot(browser, "joined-token")

    client_wheel_ensure()  # built once before, as `make run` and deployments do: the page never builds it
    browser.get(server.url + "/download/")
    sha = until(
        browser, lambda: browser.find_element(By.ID, "wheel-sha256").text.strip(), 180, "the download page"
    )
    page = browser.page_source
    assert "Windowed" in page and "doctor --server" in page and f"sai_{token.split('_')[1]}_" in page
    screenshot(browser, "download")
    browser.find_element(By.ID, "download-wheel").click()
    wheel = client_wheel_info()
    target = browser.downloads / wheel.filename
    until(
        browser,
        lambda: target.exists() and target.stat().st_size == wheel.size_bytes,
        120,
        "the wheel download",
    )
    assert hashlib.sha256(target.read_bytes()).hexdigest() == sha == wheel.sha256


def test_staff_launch_a_campaign_whose_live_page_and_leaderboard_follow_a_real_client(
    asgi_server, fast_worker, browser, django_user_model, tmp_path
):
    server = asgi_server
    django_user_model.objects.create_superuser("boss", "boss@example.com", PASSWORD)
    player = django_user_model.objects.create_user("player-one", "p1@example.com", PASSWORD)

    # Staff launch the campaign from the form.
    log_in(browser, server, "boss", PASSWORD)
    browser.get(server.url + "/staff/campaigns/new/")
    fill(
        browser,
        name="Browser CartPole",
        slug="browser-cartpole",
        env_id="CartPole-v1",
        hyperparams=json.dumps(FAST_DQN),
    )
    screenshot(browser, "staff-launch-form")
    submit(browser, "#campaign-form")
    until(
        browser,
        lambda: browser.current_url.endswith("/campaigns/browser-cartpole/"),
        120,
        "the new campaign's page",
    )
    assert "Launched" in browser.page_source
    campaign = Campaign.objects.get(slug="browser-cartpole")
    assert campaign.status == Campaign.Status.RUNNING

    # A player's real client streams experience.
    _, token = token_create(user=player, campaign=campaign, name="player-rig")
    client = start_client(server.url, token, tmp_path / "spool", tmp_path, "--max-steps", "200000")
    procs = (client, fast_worker, server)
    try:
        browser.get(server.url + "/campaigns/browser-cartpole/")
        browser.execute_script("window.__sameDocument = true;")  # gone if the page reloads
        root = browser.find_element(By.ID, "live-stats")
        until(browser, lambda: root.get_attribute("data-live") == "open", 60, "the live websocket", *procs)
        first = int(root.get_attribute("data-points"))
        until(
            browser,
            lambda: int(root.get_attribute("data-points")) >= first + 2,
            180,
            "new chart points",
            *procs,
        )
        until(
            browser,
            lambda: browser.find_element(By.CSS_SELECTOR, '[data-figure="samples_total"]').text not in ("", "0"),
            120, "samples counted on the page", *procs,
        )  # fmt: skip
        until(
            browser, lambda: browser.execute_script("return window.__sameDocument === true"), 5, "no reload"
        )
        # The charts draw what the API says: uPlot canvases exist with data.
        assert browser.find_elements(By.CSS_SELECTOR, "#chart-throughput canvas")
        browser.execute_script("document.getElementById('live-stats').scrollIntoView()")
        screenshot(browser, "campaign-live-desktop")
        screenshot(browser, "campaign-live-phone", width=390)

        # Training started: the learner publishes models, and the page shows the version without a reload.
        until(browser, lambda: api_get(server, "/api/campaigns/browser-cartpole/")["model_version"] >= 1, 240,
              "the first model", *procs)  # fmt: skip
        until(
            browser,
            # In the closed details section: its text, as the page holds it.
            lambda: browser.find_element(By.CSS_SELECTOR, '[data-figure="model_version"]')
            .get_attribute("textContent").startswith("v"),
            60, "the model version on the live page", *procs,
        )  # fmt: skip
        assert browser.execute_script("return window.__sameDocument === true")

        def listed() -> bool:
            browser.get(server.url + "/campaigns/browser-cartpole/leaderboard/?period=24h")
            return "player-one" in browser.find_element(By.ID, "leaderboard").text

        until(browser, listed, 120, "the player on the leaderboard", *procs)
        screenshot(browser, "leaderboard")
        board = api_get(server, "/api/campaigns/browser-cartpole/leaderboard/?period=all")
        assert board["entries"][0]["username"] == "player-one" and board["entries"][0]["samples"] > 0
    finally:
        client.stop()
