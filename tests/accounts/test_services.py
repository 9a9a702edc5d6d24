import pytest
from django.test import Client
from django_redis import get_redis_connection

from accounts.services import user_delete, user_session_keys, user_sessions_end_others
from conversations import replylog
from conversations.models import Conversation, Message
from conversations.services import conversation_create

pytestmark = pytest.mark.django_db


def test_the_users_sessions_are_found_and_the_kept_one_survives(alice, bob):
    clients = [Client() for _ in range(3)]
    for client in clients[:2]:
        client.force_login(alice)
    clients[2].force_login(bob)
    keep = clients[0].session.session_key

    assert user_sessions_end_others(user=alice, keep=keep) == 1

    assert user_session_keys(user=alice) == [keep]
    assert len(user_session_keys(user=bob)) == 1


def test_deleting_a_user_stops_its_replies_being_written(alice, builtin_roles):
    conversation = conversation_create(owner=alice)
    Message.objects.create(conversation=conversation, author="user", content="q")
    reply = Message.objects.create(conversation=conversation, author="assistant", status="streaming")

    user_delete(user=alice)

    assert get_redis_connection("default").exists(replylog.stop_key(reply.pk))
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
