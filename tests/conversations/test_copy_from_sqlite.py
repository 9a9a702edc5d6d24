"""manage.py copy_from_sqlite moves an install from its SQLite file into the database
the site runs on (PostgreSQL in the suite's run on it): every row with its id and dates,
and new rows after it get new ids."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError

from conversations.models import Conversation, Message
from conversations.tokens import TOKEN_PREFIX, api_token_authenticate
from providers.models import Provider
from sharing.models import SharedLink
from tests.conftest import server_database_env

pytestmark = pytest.mark.django_db(transaction=True)

WRITTEN = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
RAW_TOKEN = TOKEN_PREFIX + "an-old-install-token-0123456789"
BASE_DIR = Path(__file__).resolve().parents[2]

# Run by the old install's own `manage.py shell`: what it holds, and the messages' ids.
OLD_DATA = f"""
import hashlib, json
from datetime import datetime
from django.contrib.auth.models import User
from conversations.models import ApiToken, Conversation, Message, UserLimit
from providers.models import Provider
from sharing.models import SharedLink
from tests.conftest import server_database_env

written = datetime.fromisoformat({WRITTEN.isoformat()!r})
user = User.objects.create_user("ada", password="an old password")
role = Role.objects.create(slug="poet", name="Poet", system_prompt="Write verse.")
provider = Provider(name="elsewhere", label="Elsewhere", base_url="https://example.com/v1")
provider.api_key = "sk-old-secret"
provider.save()
conversation = Conversation.objects.create(owner=user, role=role, title="Old verse")
question = Message.objects.create(conversation=conversation, author="user", content="A rhyme?", turn=1)
replies = [
    Message.objects.create(
        conversation=conversation, author="assistant", content=text, turn=1, parent=question,
        reply_to=question, superseded=text == "Moon, June.",
        sent={{"system": "Write verse.", "messages": [question.pk], "images": False}},
    )
    for text in ("Moon, June.", "Cat, hat.")
]
Message.objects.filter(conversation=conversation).update(created_at=written)
raw = {RAW_TOKEN!r}
digest = hashlib.sha256(raw.encode()).hexdigest()
ApiToken.objects.create(user=user, name="script", prefix=raw[:10], key_hash=digest)
UserLimit.objects.create(user=user, messages_per_minute=3, concurrent_replies=1, daily_tokens=500)
SharedLink.objects.create(
    conversation=conversation, title="Old verse", token="old-shared-token", updated_at=written
)
print(json.dumps({{"question": question.pk, "first": replies[0].pk, "second": replies[1].pk}}))
"""


def manage(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**os.environ, "DATABASE_URL": "", **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        raise CommandError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed")
    return result.stdout


@pytest.fixture
def old_install(tmp_path) -> Iterator[tuple[Path, dict[str, int]]]:
    """An install's SQLite database, migrated by its own `manage.py`, holding a user with a
    conversation (a question, two versions of its reply), a role, a provider with its key,
    an API token, limits and a shared link."""
    path = tmp_path / "db.sqlite3"
    old = {"SQLITE_PATH": str(path)}
    manage("migrate", "--verbosity", "0", env=old)
    ids = json.loads(manage("shell", "-c", OLD_DATA, env=old).strip().splitlines()[-1])
    yield path, ids
    ContentType.objects.clear_cache()  # the copy gave content types the old install's ids


def copy_from_sqlite(path: Path) -> str:
    """The command as an operator runs it: its own process, on the site's database."""
    return manage("copy_from_sqlite", str(path), env=server_database_env())


def test_everything_is_copied_with_its_ids_dates_and_secrets(old_install):
    path, ids = old_install

    copy_from_sqlite(path)

    ada = User.objects.get(username="ada")
    assert ada.check_password("an old password")
    conversation = Conversation.objects.get(title="Old verse")
    assert conversation.role.slug == "poet"
    messages = {m.pk: m for m in Message.objects.filter(conversation=conversation)}
    assert set(messages) == set(ids.values())
    assert messages[ids["second"]].parent_id == ids["question"]
    assert messages[ids["first"]].superseded and not messages[ids["second"]].superseded
    assert messages[ids["second"]].sent == {
        "system": "Write verse.",
        "messages": [ids["question"]],
        "images": False,
    }
    assert {m.created_at for m in messages.values()} == {WRITTEN}
    assert Provider.objects.get(name="elsewhere").api_key == "sk-old-secret"
    assert api_token_authenticate(raw=RAW_TOKEN) == ada
    assert (ada.chat_limit.messages_per_minute, ada.chat_limit.daily_tokens) == (3, 500)
    assert SharedLink.objects.get(token="old-shared-token").conversation == conversation


def test_rows_written_after_the_copy_get_new_ids(old_install):
    path, ids = old_install
    copy_from_sqlite(path)
    conversation = Conversation.objects.get(title="Old verse")

    later = Message.objects.create(conversation=conversation, author="user", content="Another?", turn=2)

    assert later.pk > max(ids.values())


def test_a_target_that_holds_data_is_refused_and_left_as_it_was(old_install):
    path, _ids = old_install
    User.objects.create_user("someone-new")

    with pytest.raises(CommandError, match="not empty"):
        copy_from_sqlite(path)

    assert list(User.objects.values_list("username", flat=True)) == ["someone-new"]


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="No SQLite database"):
        copy_from_sqlite(tmp_path / "nothing.sqlite3")
