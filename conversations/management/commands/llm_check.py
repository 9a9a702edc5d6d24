import asyncio
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from conversations.llm import provider_check


class Command(BaseCommand):
    help = (
        "Check the configured model provider: the base URL answers, the model is listed, and a "
        "1-token completion works, with the latency of each step. Exits non-zero on failure."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        steps = asyncio.run(provider_check())
        for step in steps:
            mark = "ok  " if step.ok else "FAIL"
            timing = f" ({step.milliseconds:.0f} ms)" if step.milliseconds else ""
            self.stdout.write(f"{mark} {step.name}: {step.detail}{timing}")
        failed = [step for step in steps if not step.ok]
        if failed:
            raise CommandError(f"Provider check failed at '{failed[0].name}': {failed[0].detail}")
        self.stdout.write(self.style.SUCCESS("The provider works."))
