import asyncio
import sys
from typing import Any, TextIO

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations import generation, hub, sending, services
from conversations.models import Conversation, Message
from conversations.selectors import conversation_get


class Command(BaseCommand):
    help = (
        "Talk to an AI role from the terminal, saved as a conversation of the user (it shows "
        "in their web page). Multi-turn until EOF (Ctrl-D); -m sends one message, prints the "
        "reply and exits (non-zero if the reply failed)."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="username the conversation belongs to")
        parser.add_argument("--role", help="role slug for a new conversation, e.g. teacher")
        parser.add_argument("--session", help="continue this conversation (its id) instead")
        parser.add_argument("-m", "--message", help="send this one message and exit")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"], is_active=True).first()
        if user is None:
            raise CommandError(f"No active user {options['user']!r}.")
        if options["session"] and options["role"]:
            raise CommandError("Use --role for a new conversation or --session to continue one, not both.")
        asyncio.run(self.talk(user, options))

    async def talk(self, user: AbstractBaseUser, options: dict[str, Any]) -> None:
        try:
            if options["session"]:
                conversation = await database_sync_to_async(conversation_get)(
                    owner=user, conversation_id=options["session"]
                )
            else:
                conversation = await database_sync_to_async(services.conversation_create)(
                    owner=user, role_slug=options["role"]
                )
        except Conversation.DoesNotExist:
            raise CommandError(f"{options['user']} has no conversation {options['session']}.") from None
        except services.ChatError as exc:
            raise CommandError(exc.message) from None
        self.stderr.write(f"Conversation {conversation.pk} with {conversation.role.name}")
        if options["message"] is not None:
            status, error = await self.turn(user, conversation, options["message"])
            if status not in {Message.Status.COMPLETE, Message.Status.STOPPED}:
                raise CommandError(error or f"The reply ended {status}.")
            return
        stdin: TextIO = options.get("stdin") or sys.stdin
        while True:
            self.stderr.write("you> ", ending="")
            self.stderr.flush()
            line = await asyncio.to_thread(stdin.readline)
            if not line:  # EOF
                self.stderr.write("")
                return
            if line.strip():
                await self.turn(user, conversation, line)

    async def turn(self, user: AbstractBaseUser, conversation: Conversation, text: str) -> tuple[str, str]:
        """Send one message and print its reply as it streams; returns the reply's status and error."""
        try:
            exchange = await sending.message_send(owner=user, conversation_id=conversation.pk, content=text)
        except services.ChatError as exc:
            self.stderr.write(exc.message)
            return "refused", exc.message
        status, error = "", ""
        async for event in hub.follow(reply_id=exchange.reply.pk):
            if event.kind == "delta":
                self.stdout.write(event.text, ending="")
                self.stdout.flush()
            else:
                status, error = event.status, event.error
        self.stdout.write("")
        if status != Message.Status.COMPLETE:
            self.stderr.write(f"[{status}] {error}".rstrip())
        # The job still releases the conversation after its end event: let it finish.
        await generation.wait(exchange.reply.pk)
        return status, error
