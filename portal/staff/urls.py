from django.urls import path

from portal.staff import views

app_name = "staff"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("campaigns/new/", views.campaign_new, name="campaign-new"),
    path("campaigns/<slug:slug>/visibility/", views.campaign_visibility, name="campaign-visibility"),
    path("campaigns/<slug:slug>/<str:action>/", views.campaign_action, name="campaign-action"),
    path("announcements/", views.announcements, name="announcements"),
    path("announcements/<int:pk>/", views.announcements, name="announcement-edit"),
    path("announcements/<int:pk>/delete/", views.announcement_delete, name="announcement-delete"),
    path("machines/flagged/", views.flagged_machines, name="flagged"),
    path("machines/<int:pk>/unflag/", views.machine_unflag, name="unflag"),
    path("machines/<int:pk>/revoke/", views.machine_revoke, name="revoke"),
    path("machines/<int:pk>/void/", views.machine_void, name="void"),
    path("audit/", views.audit_log, name="audit"),
]
