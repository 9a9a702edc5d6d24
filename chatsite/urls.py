from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from conversations import views as chat_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", chat_views.SignInView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", chat_views.signup, name="signup"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("conversations.api_urls")),
    path("", include("conversations.urls")),
]
