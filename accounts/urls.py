"""Sign-in, sign-up, the settings page and password change and reset, under /accounts/.

Django's auth views keep their own URL names (password_reset_done, ...): they reverse them.
"""

from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views

urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", views.signup, name="signup"),
    path("settings/", views.account_settings, name="account_settings"),
    path("settings/instructions/", views.instructions_save, name="instructions_save"),
    path("settings/prompts/", views.prompt_add, name="prompt_add"),
    path("settings/prompts/<int:prompt_id>/delete/", views.prompt_remove, name="prompt_remove"),
    path("settings/import/", views.conversations_import_upload, name="conversations_import"),
    path("settings/sessions/", views.sessions_end_others, name="sessions_end_others"),
    path("settings/delete/", views.account_delete, name="account_delete"),
    path("password_change/", views.PasswordChangeView.as_view(), name="password_change"),
    path("password_reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password_reset/done/",
        auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_done.html"),
        name="password_reset_done",
    ),
    path(
        "reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(template_name="accounts/password_reset_confirm.html"),
        name="password_reset_confirm",
    ),
    path(
        "reset/done/",
        auth_views.PasswordResetCompleteView.as_view(template_name="accounts/password_reset_complete.html"),
        name="password_reset_complete",
    ),
]
