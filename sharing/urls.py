from django.urls import path

from sharing import views

app_name = "sharing"

urlpatterns = [
    path("c/<uuid:conversation_id>/share/", views.share_manage, name="manage"),
    path("shares/<int:share_id>/delete/", views.share_remove, name="remove"),
    # The shared copy: its token is the whole key.
    path("s/<str:token>/", views.share_view, name="view"),
    path("s/<str:token>/continue/", views.share_continue, name="continue"),
]
