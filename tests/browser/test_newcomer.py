"""What a newcomer sees in the first five minutes (issue 20), in one shared headless Chromium.

The boss campaign's win rate leads the home page, its card and its page; no public page scrolls sideways
on a 390 px phone; the token page shows its token once, copies it alone, and a refresh mints no other.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from selenium.webdriver.common.by import By

from portal.campaigns.models import Campaign
from portal.campaigns.services import campaign_create, campaign_launch, model_publish
from portal.downloads.services import client_wheel_ensure
from portal.livestats.models import CampaignSnapshot
from portal.machines.models import MachineToken
from tests.browser.conftest import ARTIFACTS, screenshot
from tests.browser.test_portal_browser import PASSWORD, fill, log_in, submit, until
from tests.portal.conftest import model_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}


# The elements that stick out past the viewport's right edge (innermost first): what to fix when a page is too wide.
WIDE = """
var out = [], w = window.innerWidth;
document.querySelectorAll('body *').forEach(function (el) {
  var r = el.getBoundingClientRect();
  if (r.right > w + 1 && r.width > 0) out.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ').join('.') : '') + ' ' + Math.round(r.right));
});
return out.slice(-8);
"""


def _too_wide(driver) -> list[str]:
    # Against the phone's width, not innerWidth: a mobile browser zooms out to fit a page that is too
    # wide, and its innerWidth then grows with the page.
    width = driver.execute_script("return document.documentElement.scrollWidth")
    if width <= PHONE["width"]:
        return []
    return driver.execute_script(WIDE.replace("window.innerWidth", str(PHONE["width"]))) or [f"scrollWidth {width}"]


def _phone(driver, on: bool) -> None:
    if on:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    else:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def _boss_campaign() -> Campaign:
    arena = campaign_launch(
        campaign=campaign_create(
            slug="iudex-arena", name="Iudex in the arena", env_id="soulsai/IudexArena-v0",
            description="The arena's Iudex Gundyr, at full strength.",
        )
    )  # fmt: skip
    now = timezone.now()
    Campaign.objects.filter(pk=arena.pk).update(
        win_rate_recent=0.74, boss_hp_left_recent=0.18, player_hp_left_recent=0.35, mean_return_recent=0.3,
        episodes_total=5120, wins_total=2210, samples_total=1_480_000, clients_active=3, model_version=6,
        first_win_at=now - timedelta(days=2), updates_total=9000, eval_version=4, eval_win_rate=0.7,
    )  # fmt: skip
    points = [(now - timedelta(hours=h), rate) for h, rate in ((30, 0.05), (25, 0.12), (12, 0.4), (3, 0.66))]
    for at, rate in points:
        CampaignSnapshot.objects.create(
            campaign=arena, at=at, win_rate=rate, boss_hp_left=1 - rate, mean_return=rate, clients_active=3
        )
    for version in (2, 4):
        model_publish(campaign_id=arena.id, version=version, weights=model_bytes(version), is_checkpoint=True,
                      samples_total=version * 1000, updates_total=version * 50)  # fmt: skip
    arena.refresh_from_db()
    return arena


def test_a_newcomer_sees_the_fight_on_any_screen_and_gets_one_token(
    asgi_server, module_browser, django_user_model
):
    server, browser = asgi_server, module_browser
    arena = _boss_campaign()
    pole = campaign_launch(
        campaign=campaign_create(slug="pole", name="CartPole warm-up", env_id="CartPole-v1")
    )
    django_user_model.objects.create_user("newbie", "newbie@example.com", PASSWORD)
    client_wheel_ensure()

    # Lead with the fight: the card says how often the agent wins, and its trend, before anything else.
    browser.get(server.url + "/")
    card = browser.find_element(By.CSS_SELECTOR, '[data-campaign-card="iudex-arena"]')
    text = card.text
    assert "74%" in text and "of the last 100 fights won" in text and "up from 12%" in text, text
    assert "Boss HP left: 18%" in text and "First win" in text and "return" not in text.lower()
    assert "Iudex Gundyr" in browser.find_element(By.CSS_SELECTOR, ".hero h1").text
    needs = browser.find_element(By.CSS_SELECTOR, ".needs").text
    assert "1.15.2" in needs and "offline mode" in needs and "Any PC" in needs
    screenshot(browser, "newcomer-home")

    browser.get(server.url + arena.get_absolute_url())
    fight = browser.find_element(By.ID, "fight").text
    assert "74%" in fight and "up from 12%" in fight
    charts = until(browser, lambda: browser.find_elements(By.CSS_SELECTOR, ".charts .chart-box canvas") and
                   browser.find_elements(By.CSS_SELECTOR, ".charts .chart-box"), 60, "the charts")  # fmt: skip
    assert charts[0].get_attribute("id") == "chart-winrate"  # the first chart is the win rate
    summary = until(
        browser,
        lambda: browser.find_element(By.CSS_SELECTOR, '[data-summary="chart-winrate"]').text,
        30,
        "the win-rate chart's text alternative",
    )
    # The API serves the last day: the chart starts at the 12-hours-ago point (40%).
    assert "Win rate (last 100 fights): 66% now, 40% at the start of the chart" in summary, summary
    assert "Boss HP left (last 100 fights): 34% now" in summary, summary
    assert not browser.find_element(
        By.CSS_SELECTOR, '[data-figure="updates_total"]'
    ).is_displayed()  # details
    screenshot(browser, "boss-campaign-desktop")

    # A stopped campaign's page is not "live": its figures are final.
    from portal.campaigns.services import campaign_stop

    old = campaign_launch(
        campaign=campaign_create(slug="old-arena", name="Old arena", env_id="soulsai/IudexArena-v0")
    )
    campaign_stop(campaign=old)
    browser.get(server.url + old.get_absolute_url())
    until(browser, lambda: browser.find_element(By.ID, "live-indicator").text.lower() == "stopped: final figures",
          30, "the stopped campaign's label")  # fmt: skip

    # No public page scrolls sideways on a phone.
    pages = [
        "/", "/campaigns/", arena.get_absolute_url(), pole.get_absolute_url(), old.get_absolute_url(),
        f"/campaigns/{arena.slug}/history/", f"/campaigns/{arena.slug}/leaderboard/", "/leaderboard/",
        "/download/", "/accounts/login/", "/accounts/signup/", "/no-such-page/",
        "/teams/", "/privacy/", "/volunteers/newbie/",
    ]  # fmt: skip
    _phone(browser, True)
    try:
        too_wide = {}
        for path in pages:
            browser.get(server.url + path)
            if wide := _too_wide(browser):
                too_wide[path] = wide
            if path == arena.get_absolute_url():
                browser.save_screenshot(str(ARTIFACTS / "boss-campaign-phone.png"))
        assert too_wide == {}, f"wider than the 390 px phone: {too_wide}"

        # Joining, on the phone: the token page, its copy button, and a refresh that mints nothing.
        log_in(browser, server, "newbie", PASSWORD)
        browser.get(server.url + arena.get_absolute_url())
        name = browser.find_element(By.NAME, "machine_name").get_attribute("value")
        assert name.startswith(("Android phone", "Linux PC", "PC")) and name != "my machine", name
        submit(browser, "#join form")
        token = until(
            browser, lambda: browser.find_element(By.ID, "token-value").text.strip(), 60, "the token"
        )
        assert token.startswith("sai_")
        assert _too_wide(browser) == []
        commands = " ".join(
            e.text for e in browser.find_elements(By.CSS_SELECTOR, "pre.code:not(.token) code")
        )
        assert "soulsai-client" in commands and token not in commands
        browser.execute_cdp_cmd(
            "Browser.grantPermissions",
            {"origin": server.url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
        )
        browser.find_element(By.ID, "copy-token").click()
        until(browser, lambda: "Copied" in browser.find_element(By.ID, "copy-status").text, 10, "the copy")
        copied = browser.execute_async_script(
            "var done = arguments[0]; navigator.clipboard.readText().then(done, function (e) { done('ERR ' + e); });"
        )
        assert copied == token  # the token alone: no spaces, no newline, no label
        browser.refresh()
        until(browser, lambda: "already shown" in browser.page_source, 30, "the refreshed token page")
        assert token not in browser.page_source
        assert MachineToken.objects.filter(user__username="newbie").count() == 1
    finally:
        _phone(browser, False)


def test_staff_see_every_hyperparameter_and_every_problem_at_once(
    asgi_server, module_browser, django_user_model
):
    server, browser = asgi_server, module_browser
    django_user_model.objects.create_superuser("chief", "chief@example.com", PASSWORD)
    log_in(browser, server, "chief", PASSWORD)
    browser.get(server.url + "/staff/campaigns/new/")
    browser.find_element(By.NAME, "name").send_keys("Iudex, round 2")
    assert browser.find_element(By.NAME, "slug").get_attribute("value") == "iudex-round-2"  # from the name

    # Every hyperparameter, with the defaults of the chosen algorithm and environment.
    fill(browser, env_id="soulsai/IudexArena-v0")
    until(browser, lambda: browser.find_element(By.ID, "hp-lr").get_attribute("value") == "0.0005", 10,
          "the arena's DQN defaults")  # fmt: skip
    assert browser.find_element(By.ID, "hp-normalize_obs").get_attribute("value") == "true"
    fill(browser, env_id="CartPole-v1")
    until(browser, lambda: browser.find_element(By.ID, "hp-normalize_obs").get_attribute("value") == "false", 10,
          "CartPole's defaults")  # fmt: skip
    fields = browser.find_elements(By.CSS_SELECTOR, "#hp-grid input, #hp-grid select")
    assert len(fields) >= 30, len(fields)
    screenshot(browser, "staff-launch-fields")

    # A changed field goes into the JSON; a typo typed there and two bad values: all three said at once.
    lr = browser.find_element(By.ID, "hp-lr")
    lr.clear()
    lr.send_keys("0.9")
    browser.find_element(By.ID, "hp-gamma").click()  # the change event
    assert '"lr": 0.9' in browser.find_element(By.NAME, "hyperparams").get_attribute("value")
    fill(browser, hyperparams='{"lerning_starts": 500, "batch_size": "big", "gamma": 2}')
    submit(browser, "#campaign-form")
    errors = until(browser, lambda: browser.find_element(By.ID, "hyperparams-errors").text, 60, "the errors")
    assert "did you mean “learning_starts”?" in errors and "batch_size must be a whole number" in errors
    assert "gamma must be in (0, 1]" in errors

    # Allowed but surely wrong: said, and created only once confirmed.
    fill(browser, hyperparams='{"lr": 0.9}')
    submit(browser, "#campaign-form")
    warning = until(browser, lambda: browser.find_element(By.ID, "form-warnings").text, 60, "the warning")
    assert "lr 0.9 is allowed but almost surely too large" in warning
    browser.find_element(By.NAME, "confirm_warnings").click()
    submit(browser, "#campaign-form")
    until(browser, lambda: browser.current_url.endswith("/campaigns/iudex-round-2/"), 120, "the new campaign")
    assert Campaign.objects.get(slug="iudex-round-2").hyperparams == {"lr": 0.9}
