"""Campaign pages and model files (namespace "campaigns"), and the JSON API (``api_urlpatterns``)."""

from django.urls import path

from portal.campaigns import api, views

app_name = "campaigns"

urlpatterns = [
    path("", views.campaign_list, name="list"),
    path("<slug:slug>/", views.campaign_detail, name="detail"),
    path("<slug:slug>/join/", views.campaign_join, name="join"),
    path("<slug:slug>/models/<int:version>.safetensors", views.model_file, name="model"),
]

# Included under /api/ with the namespace "api" by portal.urls.
api_urlpatterns = [
    path("campaigns/", api.campaign_list, name="campaigns"),
    path("campaigns/<slug:slug>/", api.campaign_detail, name="campaign"),
    path("campaigns/<slug:slug>/checkpoints/", api.checkpoint_list, name="checkpoints"),
]
