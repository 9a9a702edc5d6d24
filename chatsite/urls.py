from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.i18n import set_language

from conversations import views as chat_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", chat_views.SignInView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", chat_views.signup, name="signup"),
    # The sign-in pages offer the language switch too.
    path("i18n/setlang/", login_not_required(set_language), name="set_language"),
    path("", include("conversations.api_urls")),
    path("", include("conversations.urls")),
]
