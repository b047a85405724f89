from django.urls import path

from portal.machines import views

app_name = "machines"

urlpatterns = [
    path("<int:pk>/revoke/", views.token_revoke, name="revoke"),
]
