"""Volunteer and team pages, and the privacy page (namespace "volunteers", mounted at the site root)."""

from django.urls import path

from portal.volunteers import views

app_name = "volunteers"

urlpatterns = [
    path("volunteers/<str:username>/", views.volunteer_page, name="volunteer"),
    path("teams/", views.team_board, name="teams"),
    path("teams/new/", views.team_create, name="team-create"),
    path("teams/leave/", views.team_leave, name="team-leave"),
    path("teams/<slug:slug>/", views.team_page, name="team"),
    path("teams/<slug:slug>/join/", views.team_join, name="team-join"),
    path("privacy/", views.privacy, name="privacy"),
]
