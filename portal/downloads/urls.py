from django.urls import path

from portal.downloads import views

app_name = "downloads"

urlpatterns = [
    path("", views.download_page, name="page"),
    path("release.json", views.release, name="release"),
    path("install.sh", views.installer, {"script": "install.sh"}, name="install-sh"),
    path("install.ps1", views.installer, {"script": "install.ps1"}, name="install-ps1"),
    path("<str:filename>", views.download_file, name="file"),
]
