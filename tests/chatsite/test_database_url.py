"""DATABASE_URL as Django's database settings: PostgreSQL through psycopg."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from chatsite.database_url import database_settings


def test_a_postgres_url_names_the_server_the_database_and_who_connects():
    found = database_settings("postgres://chat%40ops:p%2Fss@db.example.com:6432/chat_site?sslmode=require")

    assert found["ENGINE"] == "django.db.backends.postgresql"
    assert (found["USER"], found["PASSWORD"], found["HOST"], found["PORT"], found["NAME"]) == (
        "chat@ops",
        "p/ss",
        "db.example.com",
        "6432",
        "chat_site",
    )
    assert found["OPTIONS"]["sslmode"] == "require"


def test_each_thread_keeps_its_connection_checked_before_reuse():
    found = database_settings("postgresql://chatsite@127.0.0.1/chatsite")

    assert (found["CONN_MAX_AGE"], found["CONN_HEALTH_CHECKS"]) == (None, True)
    assert found["OPTIONS"]["connect_timeout"] == 5
    assert found["PORT"] == ""  # PostgreSQL's own default


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://root@localhost/chat", "must start with postgres://"),
        ("postgres://chatsite@localhost/", "names no database"),
        ("postgres://chatsite@localhost:five/chat", "port that is not a number"),
    ],
)
def test_a_url_chatsite_cannot_use_is_refused_saying_why(url, says):
    with pytest.raises(ImproperlyConfigured, match=says):
        database_settings(url)
