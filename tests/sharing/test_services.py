"""Sharing a conversation: the copy it makes, updating and ending it, and continuing one."""

import pytest

from conversations.errors import ChatError
from conversations.limits import LimitExceeded
from conversations.models import Attachment, Conversation, Message, UserInstructions
from conversations.services import conversation_create, conversation_delete
from roles.models import Role
from sharing.models import SharedLink
from sharing.selectors import share_get
from sharing.services import share_continue, share_delete, share_publish
from tests.sharing.conftest import conversation_with_turns

pytestmark = pytest.mark.django_db


def test_the_copy_holds_the_title_and_the_messages_as_they_stand(alice, tides):
    question = tides.messages.get(author="user")
    Message.objects.create(
        conversation=tides,
        author="assistant",
        content="An earlier answer",
        turn=1,
        reply_to=question,
        superseded=True,
    )
    Message.objects.create(conversation=tides, author="user", content="And waves?", turn=2)
    Message.objects.create(
        conversation=tides, author="assistant", content="Still writi", status="streaming", turn=2
    )

    link, _created = share_publish(owner=alice, conversation_id=tides.pk, show_name=False)

    assert link.title == "Tides"
    assert link.role_slug == "teacher"
    assert link.messages == [
        {"author": "user", "content": "Why are there tides?", "images": 0},
        {"author": "assistant", "content": "The **Moon** pulls the sea.", "status": "complete"},
        {"author": "user", "content": "And waves?", "images": 0},
    ]


def test_a_stopped_reply_is_shared_with_its_status_and_a_failed_one_is_left_out(alice, tides):
    asked = Message.objects.create(conversation=tides, author="user", content="More?", turn=2)
    Message.objects.create(
        conversation=tides, author="assistant", content="Well,", status="stopped", turn=2, reply_to=asked
    )
    Message.objects.create(conversation=tides, author="user", content="Again?", turn=3)
    Message.objects.create(
        conversation=tides, author="assistant", content="", status="error", error="Upstream 500", turn=3
    )

    link, _created = share_publish(owner=alice, conversation_id=tides.pk, show_name=False)

    assert [m.get("status") for m in link.messages] == [None, "complete", None, "stopped", None]
    assert "Upstream 500" not in str(link.messages)


def test_sharing_again_updates_the_copy_at_the_same_url(alice, tides):
    first, created = share_publish(owner=alice, conversation_id=tides.pk, show_name=False)
    Message.objects.create(conversation=tides, author="user", content="And the Sun?", turn=2)

    again, created_again = share_publish(owner=alice, conversation_id=tides.pk, show_name=False)

    assert (created, created_again) == (True, False)
    assert again.pk == first.pk and again.token == first.token
    assert again.messages[-1]["content"] == "And the Sun?"
    assert again.updated_at > first.updated_at


def test_the_owner_is_named_only_when_they_choose(alice, tides):
    alice.first_name, alice.last_name = "Alice", "Liddell"
    alice.save()

    unnamed = share_publish(owner=alice, conversation_id=tides.pk, show_name=False)[0].author_name
    named = share_publish(owner=alice, conversation_id=tides.pk, show_name=True)[0].author_name

    assert (unnamed, named) == ("", "Alice Liddell")


def test_a_conversation_without_messages_has_nothing_to_share(alice, builtin_roles):
    empty = conversation_create(owner=alice, role_slug="teacher")

    with pytest.raises(ChatError) as refused:
        share_publish(owner=alice, conversation_id=empty.pk, show_name=False)

    assert refused.value.code == "nothing_to_share"
    assert not SharedLink.objects.exists()


def test_nobody_shares_someone_elses_conversation(bob, tides):
    with pytest.raises(Conversation.DoesNotExist):
        share_publish(owner=bob, conversation_id=tides.pk, show_name=False)

    assert not SharedLink.objects.exists()


def test_nobody_deletes_someone_elses_link(alice, bob, tides):
    link, _created = share_publish(owner=alice, conversation_id=tides.pk, show_name=False)

    with pytest.raises(SharedLink.DoesNotExist):
        share_delete(owner=bob, share_id=link.pk)

    assert SharedLink.objects.filter(pk=link.pk).exists()


def test_a_deleted_link_no_longer_opens(alice, tides):
    link, _created = share_publish(owner=alice, conversation_id=tides.pk, show_name=False)

    share_delete(owner=alice, share_id=link.pk)

    with pytest.raises(SharedLink.DoesNotExist):
        share_get(token=link.token)


def test_deleting_the_conversation_ends_its_link(alice, tides):
    link, _created = share_publish(owner=alice, conversation_id=tides.pk, show_name=False)

    conversation_delete(owner=alice, conversation_id=tides.pk)

    assert not SharedLink.objects.filter(pk=link.pk).exists()


@pytest.mark.parametrize("token", ["", "x" * 65, "no/slash", "spa ce", None, 12])
def test_a_malformed_token_is_no_link(token):
    with pytest.raises(SharedLink.DoesNotExist):
        share_get(token=token)


def test_continuing_makes_the_viewers_own_conversation_with_the_messages(alice, bob, builtin_roles):
    shared = conversation_with_turns(alice, ("One?", "First."), ("Two?", "Second."), title="Counting")
    link, _created = share_publish(owner=alice, conversation_id=shared.pk, show_name=False)

    copy = share_continue(viewer=bob, token=link.token)

    assert (copy.owner, copy.title, copy.role.slug) == (bob, "Counting", "teacher")
    turns = list(copy.messages.order_by("id").values_list("author", "content", "turn", "status"))
    assert turns == [
        ("user", "One?", 1, "complete"),
        ("assistant", "First.", 1, "complete"),
        ("user", "Two?", 2, "complete"),
        ("assistant", "Second.", 2, "complete"),
    ]
    replies = copy.messages.filter(author="assistant").order_by("id")
    assert list(replies.values_list("reply_to__content", flat=True)) == ["One?", "Two?"]


def test_a_continued_conversation_follows_the_viewers_instructions_not_the_owners(alice, bob, builtin_roles):
    UserInstructions.objects.create(user=alice, text="Alice's private instructions")
    UserInstructions.objects.create(user=bob, text="Bob's instructions")
    shared = conversation_with_turns(alice, ("Hi?", "Hello."))
    link, _created = share_publish(owner=alice, conversation_id=shared.pk, show_name=False)

    copy = share_continue(viewer=bob, token=link.token)

    assert copy.custom_instructions == "Bob's instructions"


def test_the_reasoning_of_a_reply_is_not_shared(alice, tides):
    reply = tides.messages.get(author="assistant")
    reply.reasoning = "PRIVATE-THINKING"
    reply.save()

    link, _created = share_publish(owner=alice, conversation_id=tides.pk, show_name=False)

    assert "PRIVATE-THINKING" not in str(link.messages)


def test_a_deactivated_owners_links_no_longer_open(alice, tides):
    link, _created = share_publish(owner=alice, conversation_id=tides.pk, show_name=False)
    alice.is_active = False
    alice.save()

    with pytest.raises(SharedLink.DoesNotExist):
        share_get(token=link.token)


def test_a_link_deleted_meanwhile_is_made_again_when_shared(alice, tides):
    first, _created = share_publish(owner=alice, conversation_id=tides.pk, show_name=False)
    SharedLink.objects.filter(pk=first.pk).delete()  # in another tab

    again, created = share_publish(owner=alice, conversation_id=tides.pk, show_name=False)

    assert created and again.token != first.token


def test_continuing_keeps_a_stopped_replys_status_and_says_where_an_image_was(alice, bob, tides):
    question = tides.messages.get(author="user")
    Attachment.objects.create(
        owner=alice, message=question, content_type="image/png", width=1, height=1, size=1
    )
    question.content = ""
    question.save()
    tides.messages.filter(author="assistant").update(status="stopped")
    link, _created = share_publish(owner=alice, conversation_id=tides.pk, show_name=False)

    copy = share_continue(viewer=bob, token=link.token)

    assert list(copy.messages.order_by("id").values_list("content", "status")) == [
        ("(an image, not included here)", "complete"),
        ("The **Moon** pulls the sea.", "stopped"),
    ]


def test_a_continued_conversation_whose_role_is_gone_gets_the_default_one(alice, bob, tides):
    link, _created = share_publish(owner=alice, conversation_id=tides.pk, show_name=False)
    Role.objects.filter(slug="teacher").update(is_active=False)

    copy = share_continue(viewer=bob, token=link.token)

    assert copy.role.slug == "assistant"


def test_continuing_past_the_hours_limit_is_refused_and_copies_nothing(settings, alice, bob, tides):
    settings.SHARE_CONTINUE_PER_HOUR = 1
    link, _created = share_publish(owner=alice, conversation_id=tides.pk, show_name=False)
    share_continue(viewer=bob, token=link.token)

    with pytest.raises(LimitExceeded) as refused:
        share_continue(viewer=bob, token=link.token)

    assert 3300 < refused.value.retry_after <= 3600
    assert Conversation.objects.filter(owner=bob).count() == 1


def test_deleting_the_account_ends_its_links(alice, tides):
    link, _created = share_publish(owner=alice, conversation_id=tides.pk, show_name=False)

    alice.delete()

    assert not SharedLink.objects.filter(pk=link.pk).exists()
