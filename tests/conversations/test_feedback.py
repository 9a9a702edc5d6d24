"""Thumbs up or down, with a comment, on a user's own replies: the page, the API, the admin."""

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from conversations.models import Feedback, Message
from conversations.services import conversation_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def reply(alice, builtin_roles) -> Message:
    conversation = conversation_create(owner=alice, title="Photosynthesis")
    Message.objects.create(conversation=conversation, author="user", content="What is chlorophyll?")
    return Message.objects.create(conversation=conversation, author="assistant", content="A green pigment.")


@pytest.fixture
def alice_client(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def rate(client: Client, reply: Message, rating: str, comment: str = ""):
    return client.post(
        f"/replies/{reply.pk}/feedback/",
        {"rating": rating, "comment": comment},
        headers={"HX-Request": "true"},
    )


def test_thumbs_up_is_kept_and_shown_pressed(alice_client, reply):
    response = rate(alice_client, reply, "up")

    assert response.status_code == 200
    assert Feedback.objects.get(reply=reply).rating == Feedback.Rating.UP
    fragment = response.content.decode()
    assert 'class="rate rate-up" aria-pressed="true"' in fragment
    assert 'class="rate rate-down" aria-pressed="false"' in fragment


def test_pressing_the_pressed_thumb_takes_the_rating_back(alice_client, reply):
    rate(alice_client, reply, "up")

    page = alice_client.get(f"/c/{reply.conversation_id}/").content.decode()
    assert 'name="rating" value="" class="rate rate-up" aria-pressed="true"' in page  # it sends ""
    rate(alice_client, reply, "")

    assert not Feedback.objects.filter(reply=reply).exists()


def test_thumbs_down_with_a_comment_is_kept_and_shown_again(alice_client, reply):
    rate(alice_client, reply, "down", "  Too vague.  ")

    page = alice_client.get(f"/c/{reply.conversation_id}/").content.decode()
    assert Feedback.objects.get(reply=reply).comment == "Too vague."
    assert ">Too vague.</textarea>" in page


def test_someone_elses_reply_cannot_be_rated(reply, bob):
    client = Client()
    client.force_login(bob)

    assert rate(client, reply, "down", "ha").status_code == 404
    assert not Feedback.objects.exists()


@pytest.mark.parametrize(("rating", "comment"), [("sideways", ""), ("up", "bad\x00byte"), ("up", "x" * 2001)])
def test_a_bad_rating_or_comment_is_a_400(alice_client, reply, rating, comment):
    assert rate(alice_client, reply, rating, comment).status_code == 400
    assert not Feedback.objects.exists()


def test_a_reply_being_written_cannot_be_rated_yet(alice_client, reply):
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.STREAMING)

    assert rate(alice_client, reply, "up").status_code == 400


def test_a_users_message_is_not_a_reply(alice_client, reply):
    question = reply.conversation.messages.get(author="user")

    assert rate(alice_client, question, "up").status_code == 404


def test_the_api_history_carries_each_replys_feedback(alice, reply):
    _token_client = Client()
    _token_client.force_login(alice)
    rate(_token_client, reply, "down", "Too vague.")

    messages = _token_client.get("/chat/history", {"session_id": str(reply.conversation_id)}).json()[
        "messages"
    ]

    assert [m["feedback"] for m in messages] == [None, {"rating": "down", "comment": "Too vague."}]


def test_staff_export_feedback_as_csv_with_formulas_defused(alice_client, reply):
    rate(alice_client, reply, "down", '=HYPERLINK("http://evil")')
    admin = get_user_model().objects.create_superuser(username="root", password="x-admin-password-1")
    staff = Client()
    staff.force_login(admin)

    listed = staff.get("/admin/conversations/feedback/")
    exported = staff.post(
        "/admin/conversations/feedback/",
        {"action": "export_csv", "_selected_action": [str(f.pk) for f in Feedback.objects.all()]},
    )

    assert listed.status_code == 200 and "HYPERLINK" in listed.content.decode()
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    assert rows[0][:3] == ["updated_at", "user", "conversation"]
    assert rows[1][1] == "alice" and rows[1][5] == "down"
    assert rows[1][6] == '\'=HYPERLINK("http://evil")'  # a spreadsheet shows it, does not run it


def test_feedback_cannot_be_added_or_edited_in_the_admin(alice_client, reply):
    rate(alice_client, reply, "up")
    admin = get_user_model().objects.create_superuser(username="root", password="x-admin-password-1")
    staff = Client()
    staff.force_login(admin)
    given = Feedback.objects.get()

    assert staff.get("/admin/conversations/feedback/add/").status_code == 403
    staff.post(f"/admin/conversations/feedback/{given.pk}/change/", {"rating": -1, "comment": "forged"})
    given.refresh_from_db()
    assert (given.rating, given.comment) == (Feedback.Rating.UP, "")
