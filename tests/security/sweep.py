"""The isolation sweep: every route and socket action, probed with each of the victim's objects.

For every HTTP route the resolver reports, every method, and every object of the
victim's (tests.security.victims.KINDS), the sweep puts the object's identifier in the
path (when the route's converter takes it), in the query string, and in a form and a
JSON body, and sends it signed out, as the attacker with his session cookie, and with
his API token. An answer must hold no byte of the victim's markers; where a declared
parameter names the victim's object, or the caller is signed out, it must refuse
(401, 403, 404, or the sign-in page); and the victim's data must be unchanged.

The socket sweep does the same for every action the consumer dispatches on, with the
victim's identifiers in every frame field: only error fragments (or nothing), no
marker in any frame, and no change to the victim's data.

The functions return findings instead of asserting, so that a test of the sweep itself
can show it catches routes that leak. The work is in three modules:

- `sweep_source`: what the code reads (parameter names, socket actions and frame
  fields), found by walking its syntax tree;
- `sweep_http`: the HTTP sweep (`bookkeeping`, `http_findings`);
- `sweep_socket`: the socket sweep (`Socket`, `socket_findings`, `action_findings`).

This module holds what they share: the constants and the findings.
"""

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conversations import generation
from tests.security.routes import (
    Own,
    Param,
    Text,
)
from tests.security.victims import KINDS, Thing, World

PROJECT_PACKAGES = frozenset(
    {"accounts", "chatsite", "conversations", "providers", "roles", "sharing", "tests"}
)
BASE_DIR = Path(__file__).resolve().parents[2]
# Any field name a view or an action might read an object's id from, whether declared or not.
ID_NAMES = frozenset({"id", "pk", "uuid", "object_id", *KINDS, *(f"{kind}_id" for kind in KINDS)})
# The consumer's error frame (chat/frames/error.html) with its text, and nothing more: a
# frame that re-renders the composer holds the empty error line too, and is no refusal.
ERROR_FRAME = re.compile(
    r'<p id="composer-error" class="composer-error" role="alert" hx-swap-oob="outerHTML">[^<]+</p>'
)
UNKNOWN_ACTION = "Unknown action."
SENTINEL = "not json"  # a frame the consumer always answers at once, with the same error
REDIRECTS = frozenset({301, 302, 303, 307, 308})
REFUSALS = frozenset({401, 403, 404})
STREAM_WITHIN = 15.0  # seconds an answer's stream may take (the attacker's own replies)
QUIET_WINDOW = 0.3  # seconds a socket is listened to for frames that come late


def is_error_frame(frame: str) -> bool:
    return ERROR_FRAME.fullmatch(frame.strip()) is not None


@dataclass(frozen=True)
class Finding:
    route: str
    problem: str
    request: str = ""

    def __str__(self) -> str:
        return f"{self.route}: {self.problem}" + (f"  [{self.request}]" if self.request else "")


def summary(findings: Sequence[Finding], limit: int = 25) -> str:
    """One line per route and problem: how many probes found it, and the first of them."""
    groups: dict[tuple[str, str], list[Finding]] = {}
    for finding in findings:
        groups.setdefault((finding.route, finding.problem), []).append(finding)
    lines = [
        f"{route}: {problem} ({len(found)}x)"
        + (f"\n    e.g. {found[0].request[:300]}" if found[0].request else "")
        for (route, problem), found in list(groups.items())[:limit]
    ]
    if len(groups) > limit:
        lines.append(f"... and {len(groups) - limit} more")
    return "\n".join(lines)


async def param_value(param: Param | None, thing: Thing, world: World) -> tuple[Any, bool]:
    """What a parameter carries in a probe of `thing`, and whether it names the victim's object."""
    if param is None:
        return thing.ident, False  # undeclared: the victim's object, whatever the view does with it
    if isinstance(param, Text):
        return param.value, False
    if isinstance(param, Own):
        return (await world.own_thing(param.kind)).ident, False
    if thing.is_a(param):
        return thing.ident, True
    if param in KINDS:
        return (await world.own_thing(param)).ident, False
    return thing.ident, False


async def settle(world: World) -> None:
    """Wait for the replies the attacker's own requests started (not the victim's, still written)."""
    busy = world.busy_reply.pk if world.busy_reply else None
    for reply_id in generation.running_ids() - {busy}:
        await asyncio.wait_for(generation.wait(reply_id), STREAM_WITHIN)
