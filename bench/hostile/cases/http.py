"""Pages and the JSON API over real HTTP: login floods, token caps, strict JSON, access checks.
Judged by the database (accounts, tokens, campaign status) and by parsing what the API returns."""

from __future__ import annotations

import http.cookiejar
import urllib.error
import urllib.parse
import urllib.request

from hostile import wire
from hostile.registry import REGISTRY, Verdict
from hostile.world import strict_loads

PASSWORD = "pw-hostile-1234"


class Browser:
    """A cookie-keeping HTTP client that fills in Django's CSRF token."""

    def __init__(self, world):
        self.base = world.web.url
        self.jar = http.cookiejar.CookieJar()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), NoRedirect)

    def request(self, path: str, data: dict | None = None, *, csrf: bool = True) -> tuple[int, str]:
        body = None
        headers = {"Referer": self.base + path}
        if data is not None:
            if csrf:
                data = {"csrfmiddlewaretoken": self.csrf(), **data}
            body = urllib.parse.urlencode(data).encode()
        try:
            with self.opener.open(urllib.request.Request(self.base + path, data=body, headers=headers),
                                  timeout=20) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def csrf(self) -> str:
        for cookie in self.jar:
            if cookie.name == "csrftoken":
                return cookie.value
        self.request("/accounts/login/")
        return next((c.value for c in self.jar if c.name == "csrftoken"), "")

    def login(self, username: str, password: str = PASSWORD, *, admin: bool = False) -> int:
        if admin:
            self.request("/admin/login/")
            return self.request("/admin/login/?next=/admin/", {"username": username, "password": password,
                                                                "next": "/admin/"})[0]
        self.request("/accounts/login/")
        return self.request("/accounts/login/", {"login": username, "password": password})[0]


def _limited(status: int, body: str) -> bool:
    return status == 429 or "too many" in body.lower()


def login_flood(world) -> Verdict:
    user = world.user(password=PASSWORD)
    browser = Browser(world)
    answers = [browser.request("/accounts/login/", {"login": user.username, "password": f"wrong-{i}"})
               for i in range(30)]
    limited = sum(_limited(*a) for a in answers)
    statuses = sorted({a[0] for a in answers})
    return Verdict(limited > 0, limited == 0, f"{limited}/30 failed logins limited; answers {statuses}")


def admin_login_flood(world) -> Verdict:
    user = world.user(password=PASSWORD, staff=True)
    browser = Browser(world)
    browser.request("/admin/login/")
    answers = [browser.request("/admin/login/", {"username": user.username, "password": f"wrong-{i}",
                                                 "next": "/admin/"}) for i in range(30)]
    # Django's admin answers a wrong password with its form again (200); a redirect (302) means the
    # admin checked no password and sent the visitor to the site's own, rate-limited, login.
    limited = sum(_limited(*a) or a[0] == 302 for a in answers)
    statuses = sorted({a[0] for a in answers})
    return Verdict(limited > 0, limited == 0, f"{limited}/30 failed admin logins limited; answers {statuses}")


def token_cap(world) -> Verdict:
    from portal.machines.models import MachineToken

    campaign = world.campaign()
    user = world.user(password=PASSWORD)
    browser = Browser(world)
    status = browser.login(user.username)
    codes = [browser.request(f"/campaigns/{campaign.slug}/join/", {"machine_name": f"m{i}"})[0] for i in range(60)]
    made = MachineToken.objects.filter(user=user).count()
    return Verdict(made < 60, made > 20, f"login {status}; 60 joins answered {sorted(set(codes))}; {made} tokens made")


def csrf_join(world) -> Verdict:
    from portal.machines.models import MachineToken

    campaign = world.campaign()
    user = world.user(password=PASSWORD)
    browser = Browser(world)
    browser.login(user.username)
    status, _ = browser.request(f"/campaigns/{campaign.slug}/join/", {"machine_name": "x"}, csrf=False)
    made = MachineToken.objects.filter(user=user).count()
    return Verdict(status == 403, made > 0, f"join without a CSRF token: {status}, {made} tokens")


def staff_action_as_volunteer(world) -> Verdict:
    campaign = world.campaign()
    user = world.user(password=PASSWORD)
    browser = Browser(world)
    browser.login(user.username)
    status, _ = browser.request(f"/staff/campaigns/{campaign.slug}/stop/", {})
    campaign.refresh_from_db()
    return Verdict(campaign.status == "running", campaign.status != "running",
                   f"volunteer POST stop: {status}; campaign {campaign.status}")


def staff_anonymous(world) -> Verdict:
    status, body = Browser(world).request("/staff/")
    shown = status == 200 and "flagged" in body.lower()
    return Verdict(status in (302, 403, 404), shown, f"/staff/ anonymous: {status}")


def draft_model(world) -> Verdict:
    campaign = world.campaign(status="draft")
    world.publish(campaign, 1)
    status, _, _ = world.http(f"/campaigns/{campaign.slug}/models/1.safetensors")
    return Verdict(status == 404, status == 200, f"a draft campaign's model: {status}")


def download_traversal(world) -> Verdict:
    leaked, statuses = False, []
    for path in ("/download/..%2F..%2Fportal%2Fsettings.py", "/download/%2E%2E/%2E%2E/portal/settings.py",
                 "/download/....//....//portal/settings.py"):
        status, body, _ = world.http(path)
        statuses.append(status)
        leaked |= b"SECRET_KEY" in body
    return Verdict(not leaked, leaked, f"answers {statuses}")


def signup_flood(world) -> Verdict:
    from django.contrib.auth import get_user_model

    browser = Browser(world)
    browser.request("/accounts/signup/")
    before = get_user_model().objects.count()
    answers = []
    for i in range(25):
        n = f"flood{i}x{before}"
        answers.append(browser.request("/accounts/signup/", {"username": n, "email": f"{n}@example.com",
                                                             "password1": "Zx9-hostile-pw", "password2": "Zx9-hostile-pw"}))
        browser.jar.clear()
        browser.request("/accounts/signup/")
    made = get_user_model().objects.count() - before
    return Verdict(made < 25, made >= 25, f"25 signups from one address: {made} accounts made")


def email_verification(world) -> Verdict:
    """What production (SOULSAI_ENV=production) runs with by default, read from its settings module."""
    import secrets
    import subprocess
    import sys

    env = {**world.env, "SOULSAI_ENV": "production", "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}
    env.pop("ACCOUNT_EMAIL_VERIFICATION", None)
    code = "from django.conf import settings; print(settings.ACCOUNT_EMAIL_VERIFICATION)"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    value = proc.stdout.strip() or f"(settings failed: {proc.stderr.strip().splitlines()[-1:]})"
    return Verdict(value == "mandatory", value != "mandatory",
                   f"ACCOUNT_EMAIL_VERIFICATION under production defaults = {value!r}")


def admin_offers_delete(world) -> Verdict:
    user = world.user(password=PASSWORD, staff=True)
    user.is_superuser = True
    user.save()
    browser = Browser(world)
    browser.login(user.username, admin=True)
    status, body = browser.request("/admin/machines/machinetoken/")
    offers = 'value="delete_selected"' in body
    return Verdict(not offers, offers, f"token changelist {status}; offers delete_selected {offers}")


def join_stopped(world) -> Verdict:
    from portal.machines.models import MachineToken

    campaign = world.campaign()
    world.stop_campaign(campaign)
    user = world.user(password=PASSWORD)
    browser = Browser(world)
    browser.login(user.username)
    status, _ = browser.request(f"/campaigns/{campaign.slug}/join/", {"machine_name": "x"})
    made = MachineToken.objects.filter(user=user).count()
    return Verdict(made == 0, made > 0, f"join a stopped campaign: {status}, {made} tokens")


def reset_flood(world) -> Verdict:
    user = world.user(password=PASSWORD)
    browser = Browser(world)
    browser.request("/accounts/password/reset/")
    answers = [browser.request("/accounts/password/reset/", {"email": user.email}) for _ in range(30)]
    limited = sum(_limited(*a) for a in answers)
    return Verdict(limited > 0, limited == 0, f"{limited}/30 password resets limited")


def _staff_create(world, *, env_id: str = "CartPole-v1", hyperparams: str = "{}") -> tuple[int, object]:
    """A staff member fills in the campaign form (site login, staff page); (status, the row or None)."""
    from portal.campaigns.models import Campaign

    user = world.user(password=PASSWORD, staff=True)
    browser = Browser(world)
    browser.login(user.username)
    slug = f"staff-{user.pk}"
    browser.request("/staff/campaigns/new/")
    status, _ = browser.request("/staff/campaigns/new/", {
        "name": slug, "slug": slug, "description": "", "env_id": env_id, "algorithm": "dqn",
        "hyperparams": hyperparams, "chunk_steps": "", "min_client_version": "0.1.0", "max_policy_lag": "0",
        "visibility": "public", "launch_now": "",
    })
    return status, Campaign.objects.filter(slug=slug).first()


def staff_module_env(world) -> Verdict:
    """Item 13, the server's side: gymnasium would import the module of a 'module:Env' id."""
    status, campaign = _staff_create(world, env_id="os:system")
    return Verdict(campaign is None, campaign is not None,
                   f"staff form with env id 'os:system': {status}, campaign {'made' if campaign else 'not made'}")


def staff_nan_hyperparams(world) -> Verdict:
    status, campaign = _staff_create(world, hyperparams='{"lr": NaN, "gamma": Infinity}')
    stored = campaign is not None
    _, why = (None, None)
    if stored:
        _, why = strict_loads(world.http(f"/api/campaigns/{campaign.slug}/")[1])
    return Verdict(not stored, stored, f"hyperparams with NaN and Infinity: {status}, campaign "
                   f"{'made' if stored else 'not made'}{'; API ' + why if why else ''}")


def _infinite_campaign(world):
    campaign = world.campaign()
    _, raw = world.token(campaign)
    with world.session(raw) as s:
        for _ in range(2):
            s.answer(wire.chunk(done=True, **{"return": 1e308}))
    # Defence in depth: returns of 1e308 as a relay before the fix stored them, whether or not this
    # relay refuses them now: the roll-up and every JSON answer must stay finite and strict.
    from trainer.keys import CampaignKeys

    world.redis_client().lpush(CampaignKeys(campaign.id).returns, repr(1e308), repr(1e308))
    world.sync(campaign)
    from portal.livestats.services import snapshot_take

    try:
        snapshot_take(campaign=campaign)
    except Exception:
        pass
    return campaign


def _strict(path_of):
    def fn(world) -> Verdict:
        campaign = _infinite_campaign(world)
        path = path_of(campaign)
        status, body, _ = world.http(path)
        _, why = strict_loads(body)
        return Verdict(why is None, why is not None, f"{path}: {status}, {why or 'strict JSON'}")

    return fn


def live_socket_strict(world) -> Verdict:
    from hostile.cases.browser import _open

    campaign = _infinite_campaign(world)
    s, how = _open(world, campaign.slug)
    if s is None:
        return Verdict(True, False, how)
    s.ws.close()
    _, why = strict_loads((s.first or {}).get("text", "{}"))
    return Verdict(why is None, why is not None, f"live socket's first message: {why or 'strict JSON'}")


REGISTRY.add("http", "api_list_strict_json", "after returns of 1e308: /api/campaigns/ is strict JSON",
             _strict(lambda c: "/api/campaigns/"), quick=True)
REGISTRY.add("http", "api_detail_strict_json", "after returns of 1e308: the campaign's API is strict JSON",
             _strict(lambda c: f"/api/campaigns/{c.slug}/"))
REGISTRY.add("http", "api_stats_strict_json", "after returns of 1e308: the stats API is strict JSON",
             _strict(lambda c: f"/api/campaigns/{c.slug}/stats/"))
REGISTRY.add("http", "api_leaderboard_strict_json", "after returns of 1e308: the leaderboard API is strict JSON",
             _strict(lambda c: f"/api/campaigns/{c.slug}/leaderboard/"))
REGISTRY.add("http", "live_socket_strict_json", "after returns of 1e308: the live websocket sends strict JSON",
             live_socket_strict)
REGISTRY.add("http", "admin_anonymous", "an anonymous visitor opens /admin/: sent to the login",
             lambda w: (lambda st: Verdict(st in (301, 302), st == 200, f"/admin/: {st}"))(Browser(w).request("/admin/")[0]))
REGISTRY.add("http", "join_stopped", "a join POST on a stopped campaign: no token", join_stopped)
REGISTRY.add("http", "staff_module_env_id", "a staff form with env id 'os:system' (module:Env): refused",
             staff_module_env, budget_s=60)
REGISTRY.add("http", "staff_nan_hyperparams", "hyperparameters with NaN and Infinity in the staff form: refused",
             staff_nan_hyperparams, budget_s=60)
REGISTRY.add("http", "token_cap", "60 joins by one account: tokens capped", token_cap, budget_s=60)
REGISTRY.add("http", "csrf_join", "a join POST without a CSRF token: refused, no token", csrf_join)
REGISTRY.add("http", "staff_action_as_volunteer", "a volunteer POSTs a staff 'stop': refused, campaign runs",
             staff_action_as_volunteer)
REGISTRY.add("http", "staff_anonymous", "an anonymous visitor opens /staff/: refused", staff_anonymous)
REGISTRY.add("http", "draft_model_file", "a draft campaign's model file: 404", draft_model)
REGISTRY.add("http", "download_traversal", "path traversal under /download/: nothing outside served", download_traversal)
REGISTRY.add("http", "email_verification_default", "production defaults to mandatory email verification",
             email_verification)
REGISTRY.add("http", "admin_offers_token_delete", "the admin offers revoke, not delete, for machine tokens",
             admin_offers_delete, budget_s=60)
REGISTRY.add("http", "signup_flood", "25 signups from one address in a minute: limited", signup_flood, budget_s=90)
REGISTRY.add("http", "password_reset_flood", "30 password resets for one address: limited", reset_flood,
             budget_s=60)
REGISTRY.add("http", "login_flood", "30 failed logins for one account: limited", login_flood, budget_s=60)
REGISTRY.add("http", "admin_login_flood",
             "30 wrong passwords posted to the Django admin's login: limited, or sent to the site's limited login", admin_login_flood,
             budget_s=60)
