"""Campaign pages and model files (namespace "campaigns"), and the JSON API (``api_urlpatterns``)."""

from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from portal.campaigns import api, views
from portal.community import api as community_api
from portal.leaderboards import api as leaderboard_api
from portal.leaderboards import views as leaderboard_views
from portal.livestats import api as stats_api
from portal.replays import api as replay_api
from portal.volunteers import api as volunteer_api

app_name = "campaigns"

urlpatterns = [
    path("", views.campaign_list, name="list"),
    path("<slug:slug>/", views.campaign_detail, name="detail"),
    path("<slug:slug>/join/", views.campaign_join, name="join"),
    path("<slug:slug>/joined/<int:token_id>/", views.campaign_joined, name="joined"),
    path("<slug:slug>/history/", views.campaign_history, name="history"),
    path("<slug:slug>/leaderboard/", leaderboard_views.campaign_board, name="leaderboard"),
    path("<slug:slug>/models/<int:version>.safetensors", views.model_file, name="model"),
]

# Included under /api/ with the namespace "api" by portal.urls.
api_urlpatterns = [
    path("campaigns/", api.campaign_list, name="campaigns"),
    path("campaigns/<slug:slug>/", api.campaign_detail, name="campaign"),
    path("campaigns/<slug:slug>/checkpoints/", api.checkpoint_list, name="checkpoints"),
    path("campaigns/<slug:slug>/stats/", stats_api.campaign_stats, name="stats"),
    path("campaigns/<slug:slug>/replays/", replay_api.replay_list, name="replays"),
    path("campaigns/<slug:slug>/replays/<int:replay_id>/", replay_api.replay_detail, name="replay"),
    path("campaigns/<slug:slug>/leaderboard/", leaderboard_api.campaign_leaderboard, name="leaderboard"),
    path("leaderboard/", leaderboard_api.global_leaderboard, name="leaderboard-global"),
    path("announcements/", community_api.announcement_list, name="announcements"),
    path("volunteers/<str:username>/", volunteer_api.volunteer_detail, name="volunteer"),
    path("teams/", volunteer_api.team_board, name="teams"),
    path("teams/<slug:slug>/", volunteer_api.team_detail, name="team"),
    path("credit/", volunteer_api.credit_export, name="credit"),
    path("openapi.json", volunteer_api.openapi_schema, name="openapi"),
]

# Every API view is read-only (require_safe), so CSRF protects nothing here; exempt, any other method
# answers the 405 docs/api.md promises instead of the CSRF middleware's 403.
for _pattern in api_urlpatterns:
    _pattern.callback = csrf_exempt(_pattern.callback)
