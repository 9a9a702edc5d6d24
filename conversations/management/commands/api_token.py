from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.models import ApiToken
from conversations.selectors import api_token_list
from conversations.tokens import api_token_create, api_token_revoke


class Command(BaseCommand):
    help = "Manage API tokens: create (the token is shown once), list, revoke."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="create a token for a user")
        create.add_argument("--user", required=True)
        create.add_argument("--name", default="", help="what the token is for")
        listing = actions.add_parser("list", help="list tokens (never their secrets)")
        listing.add_argument("--user")
        revoke = actions.add_parser("revoke", help="revoke a token by its id")
        revoke.add_argument("token_id", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "create":
            user = get_user_model().objects.filter(username=options["user"], is_active=True).first()
            if user is None:
                raise CommandError(f"No active user {options['user']!r}.")
            token, raw = api_token_create(user=user, name=options["name"])
            self.stdout.write(raw)
            self.stderr.write(
                f"Token {token.pk} for {user.get_username()}: copy it now, it is not shown again."
            )
        elif action == "list":
            for token in api_token_list(username=options.get("user")):
                used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
                state = "active" if token.is_active else "revoked"
                self.stdout.write(
                    f"{token.pk}\t{token.user.get_username()}\t{token.prefix}…\t{token.name or '-'}\t"
                    f"created {token.created_at:%Y-%m-%d}\tlast used {used}\t{state}"
                )
        else:
            try:
                token = api_token_revoke(token_id=options["token_id"])
            except ApiToken.DoesNotExist:
                raise CommandError(f"No token {options['token_id']}.") from None
            self.stdout.write(f"Revoked token {token.pk} ({token.prefix}…).")
