"""The volunteer's own pages; sign-up, login and password pages are allauth's (portal.urls)."""

from django.urls import path

from portal.accounts import views

app_name = "accounts"

urlpatterns = [
    path("profile/", views.profile, name="profile"),
]
