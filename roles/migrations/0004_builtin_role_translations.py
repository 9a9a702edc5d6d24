"""The built-in roles get their Chinese names and descriptions; an admin's edits are kept.

Before, a built-in role's one name was bilingual ("AI老师 / Teacher"). A role still named
so gets its English name back in `name` and its Chinese one in `name_zh_hans`; a role an
admin renamed keeps its name. Chinese fields are only filled when empty.
"""

from django.db import migrations

# slug: (the old bilingual name, English name, Chinese name, Chinese description)
BUILTIN = {
    "assistant": ("智能助手 / Assistant", "Assistant", "智能助手", "友好、准确的通用助手。"),
    "teacher": (
        "AI老师 / Teacher",
        "Teacher",
        "AI老师",
        "耐心的老师，一步一步讲解，并检查你是否理解。",
    ),
    "programmer": (
        "编程专家 / Programming expert",
        "Programming expert",
        "编程专家",
        "资深工程师，帮你写代码、调试、做设计和代码评审。",
    ),
}
# The built-in English descriptions as shipped: a Chinese one is added only beside these.
SHIPPED_DESCRIPTIONS = {
    "assistant": "A friendly, precise general-purpose assistant.",
    "teacher": "A patient teacher who explains step by step and checks understanding.",
    "programmer": "A senior engineer for code, debugging, design and reviews.",
}


def translate(apps, schema_editor):
    Role = apps.get_model("roles", "Role")
    for role in Role.objects.filter(slug__in=BUILTIN):
        old_name, english, chinese, chinese_description = BUILTIN[role.slug]
        fields = []
        if role.name == old_name:
            role.name = english
            fields.append("name")
        if not role.name_zh_hans and role.name == english:
            role.name_zh_hans = chinese
            fields.append("name_zh_hans")
        if not role.description_zh_hans and role.description == SHIPPED_DESCRIPTIONS[role.slug]:
            role.description_zh_hans = chinese_description
            fields.append("description_zh_hans")
        if fields:
            role.save(update_fields=fields)


def untranslate(apps, schema_editor):
    Role = apps.get_model("roles", "Role")
    for role in Role.objects.filter(slug__in=BUILTIN):
        old_name, english, _chinese, _description = BUILTIN[role.slug]
        if role.name == english:
            role.name = old_name
            role.save(update_fields=["name"])


class Migration(migrations.Migration):
    dependencies = [("roles", "0003_role_translations")]

    operations = [migrations.RunPython(translate, untranslate)]
