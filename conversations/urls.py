from django.urls import path

from conversations import attachment_views, folder_views, operator_views, sidebar_views, views

app_name = "chat"

urlpatterns = [
    path("", views.home, name="home"),
    path("c/<uuid:conversation_id>/", views.conversation_detail, name="conversation"),
    # Its earlier messages (?before=<the first message shown>), as the reader scrolls up.
    path("c/<uuid:conversation_id>/messages/", views.conversation_messages_older, name="older"),
    path("local-model/", views.local_model_note, name="local_model"),
    path("search/", views.conversation_search, name="search"),
    path("c/<uuid:conversation_id>/rename/", views.conversation_rename, name="rename"),
    path("c/<uuid:conversation_id>/delete/", views.conversation_delete, name="delete"),
    path("c/<uuid:conversation_id>/pin/", sidebar_views.conversation_pin, name="pin"),
    path("c/<uuid:conversation_id>/archive/", sidebar_views.conversation_archive, name="archive"),
    # The sidebar's list: its next page (?before=<conversation id>), and the archived ones.
    path("conversations/", sidebar_views.conversation_list_more, name="list_more"),
    path("conversations/archived/", sidebar_views.conversation_list_archived, name="list_archived"),
    # The conversations selected in the list: archived, deleted or moved together.
    path("conversations/bulk/", sidebar_views.conversations_bulk, name="bulk"),
    # Folders: made, listed when opened, renamed, deleted; a conversation moved in or out.
    path("folders/", folder_views.folder_create, name="folder_create"),
    path("folders/<int:folder_id>/", folder_views.folder_conversations, name="folder"),
    path("folders/<int:folder_id>/rename/", folder_views.folder_rename, name="folder_rename"),
    path("folders/<int:folder_id>/delete/", folder_views.folder_delete, name="folder_delete"),
    path("c/<uuid:conversation_id>/move/", folder_views.conversation_move, name="move"),
    path("c/<uuid:conversation_id>/move/form/", folder_views.conversation_move_form, name="move_form"),
    path("c/<uuid:conversation_id>/export/", views.conversation_export, name="export"),
    path("replies/<int:reply_id>/feedback/", views.reply_feedback, name="feedback"),
    # What a reply's request upstream held.
    path("replies/<int:reply_id>/sent/", views.reply_sent, name="sent"),
    # The note sent with each reply of a conversation: its form, and saving it.
    path("c/<uuid:conversation_id>/note/", views.conversation_note, name="note"),
    path("conversations/export/", views.conversations_export, name="export_all"),
    # Images for a message: uploaded before it is sent, then served to their owner only.
    path("attachments/", attachment_views.attachment_upload, name="attachment_upload"),
    path("attachments/<int:attachment_id>/", attachment_views.attachment_file, name="attachment"),
    # For load balancers and operators: no sign-in, no secrets.
    path("healthz", operator_views.healthz, name="healthz"),
    # Prometheus: staff, or METRICS_TOKEN as a bearer token.
    path("metrics", operator_views.metrics, name="metrics"),
]
