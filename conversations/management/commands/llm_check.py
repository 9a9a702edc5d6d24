import asyncio
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from conversations.llm import provider_check
from providers.models import DEFAULT_PROVIDER
from providers.selectors import Endpoint, endpoint_get, model_choices


class Command(BaseCommand):
    help = (
        "Check a model provider (the one in .env unless --provider names another): the base "
        "URL answers, the model is listed, and a 1-token completion works, with the latency "
        "of each step. Exits non-zero on failure."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--provider", default="", help="A provider's name, as in the admin.")
        parser.add_argument("--model", default="", help="The model to try (default: the provider's first).")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["provider"] or DEFAULT_PROVIDER
        endpoint: Endpoint | None = None
        model = options["model"]
        if name != DEFAULT_PROVIDER:
            endpoint = endpoint_get(name)
            if endpoint is None:
                raise CommandError(f"No enabled provider is named {name!r}.")
            if not model:
                first = next((c.model for c in model_choices() if c.provider == name), "")
                if not first:
                    raise CommandError(f"Provider {name!r} has no enabled model; name one with --model.")
                model = first
        steps = asyncio.run(provider_check(endpoint=endpoint, model=model))
        for step in steps:
            mark = "ok  " if step.ok else "FAIL"
            timing = f" ({step.milliseconds:.0f} ms)" if step.milliseconds else ""
            self.stdout.write(f"{mark} {step.name}: {step.detail}{timing}")
        failed = [step for step in steps if not step.ok]
        if failed:
            raise CommandError(f"Provider check failed at '{failed[0].name}': {failed[0].detail}")
        self.stdout.write(self.style.SUCCESS("The provider works."))
