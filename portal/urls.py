"""URL map of the portal (pages, JSON API, model files, downloads); websockets are in portal.asgi."""

from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

from portal.campaigns.urls import api_urlpatterns
from portal.core import views as core_views
from portal.leaderboards import views as leaderboard_views

# The admin has no login of its own: /admin/login/ sends to the site's login, which is rate-limited
# (counted in Redis across processes) and asks staff who turned it on for their second factor.
admin.site.login = secure_admin_login(admin.site.login)

urlpatterns = [
    path("", core_views.home, name="home"),
    path("healthz", core_views.healthz, name="healthz"),
    path("campaigns/", include("portal.campaigns.urls")),
    path("machines/", include("portal.machines.urls")),
    path("download/", include("portal.downloads.urls")),
    path("leaderboard/", leaderboard_views.global_board, name="leaderboard"),
    path("staff/", include("portal.staff.urls")),
    path("api/", include((api_urlpatterns, "api"))),
    path("admin/", admin.site.urls),
    # Ours first: /accounts/profile/ is the volunteer's page, the rest of /accounts/ is allauth's.
    path("accounts/", include("portal.accounts.urls")),
    path("accounts/", include("allauth.urls")),
    path("", include("portal.volunteers.urls")),
]
