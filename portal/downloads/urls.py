from django.urls import path

from portal.downloads import views

app_name = "downloads"

urlpatterns = [
    path("", views.download_page, name="page"),
    path("release.json", views.release, name="release"),
    path("<str:filename>", views.download_file, name="file"),
]
