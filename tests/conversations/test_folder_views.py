import re

import pytest

from conversations.folders import conversation_move, folder_create
from conversations.models import Conversation, Folder
from conversations.services import conversation_create

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def folder_name(conversation: Conversation) -> str | None:
    """The name of the folder the conversation is in now, as saved."""
    return Conversation.objects.filter(pk=conversation.pk).values_list("folder__name", flat=True).get()


@pytest.fixture
def alice_client(client, alice, builtin_roles):
    client.force_login(alice)
    return client


def item_ids(html: str) -> list[str]:
    return re.findall(r'<li id="conv-([0-9a-f-]+)"', html)


def folder_names(html: str) -> list[str]:
    return re.findall(r'<span class="folder-name">([^<]*)</span>', html)


def test_the_page_lists_the_folders(alice_client, alice):
    folder_create(owner=alice, name="Work")
    folder_create(owner=alice, name="Home")

    page = alice_client.get("/").content.decode()

    assert folder_names(page) == ["Home", "Work"]


def test_making_a_folder_answers_with_the_list_with_it_open(alice_client, alice):
    response = alice_client.post("/folders/", {"name": "Travel"}, **HTMX)

    html = response.content.decode()
    folder = Folder.objects.get(owner=alice)
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="sidebar-lists">')
    assert folder_names(html) == ["Travel"]
    assert f'<li id="folder-{folder.pk}"' in html
    assert re.search(rf'id="folder-{folder.pk}"[^>]*>\s*<details class="folder-details" open>', html)


def test_a_name_refused_answers_422_saying_why(alice_client, alice):
    folder_create(owner=alice, name="Travel")

    response = alice_client.post("/folders/", {"name": "Travel"}, **HTMX)

    assert response.status_code == 422
    assert 'role="alert"' in response.content.decode()
    assert "You already have a folder named “Travel”." in response.content.decode()
    assert Folder.objects.count() == 1


def test_a_folder_lists_its_conversations_when_opened(alice_client, alice):
    folder = folder_create(owner=alice, name="Travel")
    inside = conversation_create(owner=alice, title="Trip")
    conversation_create(owner=alice, title="Other")
    conversation_move(owner=alice, conversation_id=inside.pk, folder_id=folder.pk)

    response = alice_client.get(f"/folders/{folder.pk}/", **HTMX)

    assert response.status_code == 200
    assert item_ids(response.content.decode()) == [str(inside.pk)]


def test_the_move_form_offers_the_owners_folders_with_the_current_chosen(alice_client, alice, bob):
    work = folder_create(owner=alice, name="Work")
    home = folder_create(owner=alice, name="Home")
    folder_create(owner=bob, name="Bob's folder")
    conversation = conversation_create(owner=alice, title="Plan")
    conversation_move(owner=alice, conversation_id=conversation.pk, folder_id=work.pk)

    html = alice_client.get(f"/c/{conversation.pk}/move/form/", **HTMX).content.decode()

    options = re.findall(r'<option value="(\d*)"( selected)?>([^<]*)</option>', html)
    assert options == [("", "", "No folder"), (str(home.pk), "", "Home"), (str(work.pk), " selected", "Work")]
    assert "Bob" not in html


def test_moving_answers_with_the_list_and_the_folder_open_with_it(alice_client, alice):
    folder = folder_create(owner=alice, name="Travel")
    conversation = conversation_create(owner=alice, title="Trip")

    response = alice_client.post(f"/c/{conversation.pk}/move/", {"folder": str(folder.pk)}, **HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert Conversation.objects.get(pk=conversation.pk).folder_id == folder.pk
    # Listed once: in its open folder, not under Today.
    assert item_ids(html) == [str(conversation.pk)]
    assert html.index(f'id="folder-{folder.pk}"') < html.index(f'id="conv-{conversation.pk}"')
    assert html.index(f'id="conv-{conversation.pk}"') < html.index('id="conversation-list"')


def test_moving_into_a_new_folder_by_name(alice_client, alice):
    conversation = conversation_create(owner=alice, title="Trip")

    fields = {"folder": "", "new_folder": "Travel"}
    response = alice_client.post(f"/c/{conversation.pk}/move/", fields, **HTMX)

    assert response.status_code == 200
    assert folder_name(conversation) == "Travel"


def test_moving_into_someone_elses_folder_is_not_found(alice_client, alice, bob):
    bobs = folder_create(owner=bob, name="Bob's")
    conversation = conversation_create(owner=alice, title="Trip")

    response = alice_client.post(f"/c/{conversation.pk}/move/", {"folder": str(bobs.pk)}, **HTMX)

    assert response.status_code == 404
    assert Conversation.objects.get(pk=conversation.pk).folder_id is None


def test_a_move_that_does_not_say_where_moves_nothing(alice_client, alice):
    folder = folder_create(owner=alice, name="Travel")
    conversation = conversation_create(owner=alice, title="Trip")
    conversation_move(owner=alice, conversation_id=conversation.pk, folder_id=folder.pk)

    response = alice_client.post(f"/c/{conversation.pk}/move/", {}, **HTMX)

    assert response.status_code == 400
    assert Conversation.objects.get(pk=conversation.pk).folder_id == folder.pk


def test_a_delete_that_does_not_say_what_becomes_of_the_conversations_deletes_nothing(alice_client, alice):
    folder = folder_create(owner=alice, name="Travel")

    response = alice_client.post(f"/folders/{folder.pk}/delete/", {}, **HTMX)

    assert response.status_code == 400
    assert Folder.objects.filter(pk=folder.pk).exists()


def test_deleting_the_folder_of_the_open_conversation_with_it_leaves_the_page(alice_client, alice):
    folder = folder_create(owner=alice, name="Travel")
    conversation = conversation_create(owner=alice, title="Trip")
    conversation_move(owner=alice, conversation_id=conversation.pk, folder_id=folder.pk)

    response = alice_client.post(
        f"/folders/{folder.pk}/delete/",
        {"conversations": "delete"},
        HTTP_X_CHAT_CURRENT=str(conversation.pk),
        **HTMX,
    )

    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == "/"
    assert not Conversation.objects.exists()


def test_deleting_a_folder_keeping_its_conversations_lists_them_again(alice_client, alice):
    folder = folder_create(owner=alice, name="Travel")
    conversation = conversation_create(owner=alice, title="Trip")
    conversation_move(owner=alice, conversation_id=conversation.pk, folder_id=folder.pk)

    response = alice_client.post(f"/folders/{folder.pk}/delete/", {"conversations": "keep"}, **HTMX)

    html = response.content.decode()
    assert folder_names(html) == []
    assert item_ids(html) == [str(conversation.pk)]


def test_renaming_a_folder(alice_client, alice):
    folder = folder_create(owner=alice, name="Travel")

    response = alice_client.post(f"/folders/{folder.pk}/rename/", {"name": "Trips"}, **HTMX)

    assert folder_names(response.content.decode()) == ["Trips"]
    assert Folder.objects.get(pk=folder.pk).name == "Trips"


def test_without_htmx_a_move_goes_back_to_the_conversation(alice_client, alice):
    folder = folder_create(owner=alice, name="Travel")
    conversation = conversation_create(owner=alice, title="Trip")

    response = alice_client.post(f"/c/{conversation.pk}/move/", {"folder": str(folder.pk)})

    assert response.status_code == 302
    assert response.url == f"/c/{conversation.pk}/"
