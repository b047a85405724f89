"""The volunteer's own pages; sign-up, login and password pages are allauth's (portal.urls)."""

from django.urls import path

from portal.accounts import views

app_name = "accounts"

urlpatterns = [
    path("profile/", views.profile, name="profile"),
    path("profile/visibility/", views.profile_visibility, name="visibility"),
    path("profile/export.json", views.profile_export, name="export"),
    path("profile/delete/", views.profile_delete, name="delete"),
]
