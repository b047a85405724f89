"""A browser's session against the real ASGI server: cookies, CSRF and redirects over plain urllib.

For page tests that must hold across processes (shared rate limits, the admin login, two-factor
login): the requests go to a real uvicorn process, not to Django's in-process test client.
"""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass


@dataclass
class Page:
    status: int
    url: str  # after redirects (when followed)
    text: str
    location: str = ""  # the Location of an unfollowed redirect

    @property
    def path(self) -> str:
        return urllib.parse.urlsplit(self.url).path


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class LiveBrowser:
    """One visitor: a cookie jar, the CSRF cookie sent back as Django expects, redirects followed
    unless told otherwise. ``host``: the Host header to send, as a load balancer in front of several
    processes would pass the site's one name (allauth keys failed logins by site and login name)."""

    def __init__(self, base_url: str, *, host: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Host": host} if host else {}
        self.jar = http.cookiejar.CookieJar()
        cookies = urllib.request.HTTPCookieProcessor(self.jar)
        self._follow = urllib.request.build_opener(cookies)
        self._stay = urllib.request.build_opener(cookies, _NoRedirect())

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def set_cookie(self, name: str, value: str) -> None:
        host = urllib.parse.urlsplit(self.base_url).hostname
        self.jar.set_cookie(
            http.cookiejar.Cookie(0, name, value, None, False, host, False, False, "/", True, False, None,
                                  False, None, None, {})
        )  # fmt: skip

    def login_as(self, user) -> None:
        """Log in without the login page (no rate limit spent): a session made by Django's test client."""
        from django.conf import settings
        from django.test import Client

        client = Client()
        client.force_login(user)
        self.set_cookie(settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value)

    def _open(self, request: urllib.request.Request, follow: bool) -> Page:
        opener = self._follow if follow else self._stay
        try:
            with opener.open(request, timeout=20) as response:
                return Page(response.status, response.url, response.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", "replace")
            return Page(exc.code, exc.url or request.full_url, body, exc.headers.get("Location", ""))

    def get(self, path: str, *, follow: bool = True) -> Page:
        return self._open(urllib.request.Request(self.base_url + path, headers=self.headers), follow)

    def post(self, path: str, data: dict | list, *, follow: bool = True) -> Page:
        """POST a form, with the CSRF token of a GET of the same path first if no CSRF cookie is held yet."""
        if self.cookie("csrftoken") is None:
            self.get(path)
        body = urllib.parse.urlencode(data, doseq=True).encode()
        request = urllib.request.Request(
            self.base_url + path,
            data=body,
            headers={
                **self.headers,
                "Content-Type": "application/x-www-form-urlencoded",
                "X-CSRFToken": self.cookie("csrftoken") or "",
                "Referer": self.base_url + path,
            },
        )
        return self._open(request, follow)


def form_errors(text: str) -> str:
    """The page's text without tags, for asserting on a readable refusal."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))
