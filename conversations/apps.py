from typing import TYPE_CHECKING

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

    from conversations.models import Attachment


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = _("Conversations")

    def ready(self) -> None:
        from django.core.signals import got_request_exception
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_delete, post_migrate

        from conversations.models import Attachment

        # However a row goes (its message, conversation or user deleted, by cascade),
        # its file goes with it. A signal: cascades do not call a model's delete().
        post_delete.connect(_attachment_file_delete, sender=Attachment, dispatch_uid="attachment-file")
        # A later migration that rebuilds the message table drops the search index's triggers.
        post_migrate.connect(_search_index_ensure, sender=self, dispatch_uid="search-index")
        # The pair index's triggers call a function of ours on every write of a message.
        connection_created.connect(_search_function_register, dispatch_uid="search-pairs-function")
        # A request that failed on the database is counted for /metrics (the 500 is Django's).
        got_request_exception.connect(_request_failed, dispatch_uid="database-errors")


def _search_index_ensure(sender: AppConfig, using: str = "default", **kwargs: object) -> None:
    from django.db import connections

    from conversations.search_index import search_index_ensure

    search_index_ensure(connections[using])


def _search_function_register(sender: type, connection: "BaseDatabaseWrapper", **kwargs: object) -> None:
    from conversations.search_index import pairs_function_register

    pairs_function_register(connection)


def _request_failed(sender: object, **kwargs: object) -> None:
    import sys

    from django.db import DatabaseError

    from conversations.metrics import DATABASE_ERRORS

    # Sent while the exception is being handled: it is the one in hand.
    if isinstance(sys.exc_info()[1], DatabaseError):
        DATABASE_ERRORS.labels("request").inc()


def _attachment_file_delete(sender: type, instance: "Attachment", **kwargs: object) -> None:
    # An edited message's images share their files with the earlier version's.
    if not sender._default_manager.filter(file=instance.file.name).exists():  # type: ignore[attr-defined]
        instance.file.delete(save=False)
