from collections.abc import AsyncIterator

import pytest
from asgiref.sync import sync_to_async

from conversations.models import Message
from conversations.services import conversation_create
from conversations.tokens import api_token_create

# The browser tests' fixtures, for the security tests that drive a real page.
from tests.browser.conftest import browser, csp_violations  # noqa: F401
from tests.conftest import make_user, wait_for_reply
from tests.security.victims import Owner, Thing, World, marker, things_of


@pytest.fixture
def fast_password_hashing(settings) -> None:
    """For tests whose users never type a password: a slow hash only slows the sweep.

    Not for browser tests: the server process must be able to check the hash.
    """
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
async def world(bob, builtin_roles, fake_openai, settings, fast_password_hashing) -> AsyncIterator[World]:
    """The victim's objects of every kind (one conversation with a reply being written),
    and the attacker, Bob, with objects of his own."""
    # The victim's reply being written must not be saved half way while the sweep compares.
    settings.CHAT_CHECKPOINT_SECONDS = 3600
    # Nor end while it waits on the hung fake: a sweep of every route outlasts the 60 s
    # read timeout on a loaded machine, and the reply's end read as a change by a probe.
    settings.OPENAI_READ_TIMEOUT = 3600
    # The model reads images: a send naming the victim's image gets as far as it can.
    settings.OPENAI_MODEL_VISION = True
    markers: dict[str, str] = {}
    victim = await sync_to_async(make_user)(marker(markers, "username"))
    victim_owner = Owner(victim, fake=fake_openai, markers=markers)
    victims = await things_of(victim_owner)
    attacker_owner = Owner(bob, markers={})
    own: dict[str, Thing] = {}
    for thing in await things_of(attacker_owner):
        own.setdefault(thing.kind, thing)
    busy = await victim_owner.busy()
    world = World(
        victim=victim,
        attacker=bob,
        victims=victims,
        markers={needle.lower(): what for needle, what in markers.items()},
        attacker_owner=attacker_owner,
        own=own,
        busy_reply=busy[2] if busy else None,
        busy_text=victim_owner.busy_text,
    )
    yield world
    fake_openai.release()
    if world.busy_reply is not None:
        await wait_for_reply(world.busy_reply.pk)


@pytest.fixture
def fuzz_setup(alice, builtin_roles):
    conversation = conversation_create(owner=alice, role_slug="teacher", title="Kept")
    Message.objects.create(conversation=conversation, author="user", content="Still here")
    Message.objects.create(conversation=conversation, author="assistant", content="Still there")
    _token, raw = api_token_create(user=alice, name="fuzz")
    return conversation, raw
