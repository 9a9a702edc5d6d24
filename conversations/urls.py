from django.urls import path

from conversations import attachment_views, operator_views, sidebar_views, views

app_name = "chat"

urlpatterns = [
    path("", views.home, name="home"),
    path("c/<uuid:conversation_id>/", views.conversation_detail, name="conversation"),
    path("local-model/", views.local_model_note, name="local_model"),
    path("search/", views.conversation_search, name="search"),
    path("c/<uuid:conversation_id>/rename/", views.conversation_rename, name="rename"),
    path("c/<uuid:conversation_id>/delete/", views.conversation_delete, name="delete"),
    path("c/<uuid:conversation_id>/pin/", sidebar_views.conversation_pin, name="pin"),
    path("c/<uuid:conversation_id>/archive/", sidebar_views.conversation_archive, name="archive"),
    # The sidebar's list: its next page (?before=<conversation id>), and the archived ones.
    path("conversations/", sidebar_views.conversation_list_more, name="list_more"),
    path("conversations/archived/", sidebar_views.conversation_list_archived, name="list_archived"),
    path("c/<uuid:conversation_id>/export/", views.conversation_export, name="export"),
    path("replies/<int:reply_id>/feedback/", views.reply_feedback, name="feedback"),
    path("conversations/export/", views.conversations_export, name="export_all"),
    # Images for a message: uploaded before it is sent, then served to their owner only.
    path("attachments/", attachment_views.attachment_upload, name="attachment_upload"),
    path("attachments/<int:attachment_id>/", attachment_views.attachment_file, name="attachment"),
    # For load balancers and operators: no sign-in, no secrets.
    path("healthz", operator_views.healthz, name="healthz"),
    # Prometheus: staff, or METRICS_TOKEN as a bearer token.
    path("metrics", operator_views.metrics, name="metrics"),
]
