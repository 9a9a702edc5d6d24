from typing import Any

from django.core.management.base import BaseCommand

from providers.services import provider_keys_rotate


class Command(BaseCommand):
    help = (
        "Encrypt every provider API key again under the current SECRET_KEY (or "
        "PROVIDER_KEYS_SECRET). Run it after rotating that secret, while the old one is "
        "still in SECRET_KEY_FALLBACKS; then the old one can go."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        count = provider_keys_rotate()
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {count} provider key(s)."))
