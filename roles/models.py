from decimal import Decimal

from django.db import models


class Role(models.Model):
    """An AI persona: a system prompt users pick per conversation.

    The system prompt is staff-only: users see the name and description.
    """

    slug = models.SlugField(
        unique=True,
        max_length=50,
        help_text="Stable key used by API clients, e.g. role=teacher.",
    )
    name = models.CharField(max_length=100)
    description = models.CharField(
        max_length=300, blank=True, help_text="One line shown to users in the role picker."
    )
    system_prompt = models.TextField(help_text="Sent to the model; never shown to users.")
    model = models.CharField(
        max_length=200,
        blank=True,
        help_text="Optional model name for this role; empty uses OPENAI_MODEL.",
    )
    temperature = models.DecimalField(max_digits=3, decimal_places=2, default=Decimal("0.70"))
    is_active = models.BooleanField("active", default=True)
    sort_order = models.PositiveIntegerField(default=100)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sort_order", "name"]
        verbose_name = "AI role"
        verbose_name_plural = "AI roles"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(temperature__gte=0) & models.Q(temperature__lte=2),
                name="role_temperature_range",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"
