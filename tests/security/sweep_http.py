"""The HTTP half of the isolation sweep (tests/security/sweep.py): every route, method and
victim's object, in the path, the query string and the body, sent signed out, with the
attacker's cookie and with his token."""

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlencode

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.http import HttpResponseBase
from django.shortcuts import resolve_url
from django.test import AsyncClient, Client
from django.urls import Resolver404, resolve

from tests.security.routes import (
    NOT_FOUND_ROUTES,
    ROUTES,
    SOCKET_ACTIONS,
    SWEPT_METHODS,
    Declared,
    Own,
    Route,
    Text,
    declared_for,
)
from tests.security.sweep import ID_NAMES, REDIRECTS, REFUSALS, STREAM_WITHIN, Finding, param_value, settle
from tests.security.sweep_source import fields_read, view_functions
from tests.security.victims import ANY_KIND, KINDS, Thing, World, state_change

# --- HTTP ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    name: str
    cookie: bool = False
    token: bool = False

    def signed_out_for(self, declared: Declared) -> bool:
        """No one the route knows: signed out, or a token where only cookies count."""
        return not self.cookie and not (self.token and declared.api)


SIGNED_OUT = Caller("signed out")
BY_COOKIE = Caller("the attacker (session cookie)", cookie=True)
BY_TOKEN = Caller("the attacker (API token)", token=True)


@dataclass(frozen=True)
class Probe:
    method: str
    url: str
    query: Mapping[str, Any]
    body: Mapping[str, Any] | None
    json: bool
    names_victim: bool  # a declared parameter of the route carries the victim's object
    where: str

    def describe(self, caller: Caller, thing: Thing) -> str:
        return f"{self.method} {self.url} with the victim's {thing} in the {self.where}, as {caller.name}"


def bookkeeping(route: Route, table: Mapping[str, Declared]) -> list[Finding]:
    """A route, a parameter or a kind nobody declared."""
    declared = declared_for(route, table)
    if declared is None:
        return [Finding(route.name, "is not declared in routes.ROUTES: declare what it reads, of which kind")]
    findings = []
    for name in route.kwargs:
        if name not in declared.params:
            findings.append(Finding(route.name, f"path parameter {name!r} is not declared"))
    for name, param in declared.params.items():
        kind = param.kind if isinstance(param, Own) else param
        if isinstance(kind, str) and kind not in KINDS and kind != ANY_KIND:
            findings.append(Finding(route.name, f"{name!r} names an unknown kind {kind!r}: add it to KINDS"))
    for name in sorted(fields_read(view_functions(route.callback)) - set(declared.params)):
        findings.append(Finding(route.name, f"the view reads {name!r}, which is not declared"))
    return findings


def candidate_fields(route: Route, table: Mapping[str, Declared]) -> list[str]:
    """Every field name a probe fills: the route's declared and read ones, and any name
    an object's id might travel in."""
    names = set(ID_NAMES) | fields_read(view_functions(route.callback))
    for declared in table.values():
        names |= set(declared.params)
    for fields in SOCKET_ACTIONS.values():
        names |= set(fields)
    return sorted(names - set(route.kwargs))


def _resolves_to(url: str, route: Route) -> bool:
    try:
        match = resolve(url.split("?")[0])
    except Resolver404:
        return False
    return match.route.replace("^", "") == route.route.replace("^", "") and match.func == route.callback


async def probes(
    route: Route, declared: Declared, known: bool, method: str, thing: Thing, world: World, fields: list[str]
) -> list[Probe]:
    values: dict[str, Any] = {}
    names_victim = False
    for name in fields:
        values[name], named = await param_value(declared.params.get(name), thing, world)
        names_victim |= named

    in_path: dict[str, Any] = {}
    own_path: dict[str, Any] = {}
    path_names_victim = False
    for name in route.kwargs:
        param = declared.params.get(name)
        if isinstance(param, Text):
            in_path[name] = own_path[name] = param.value
            continue
        if isinstance(param, Own):
            # A key's route, given any other identifier of the victim's (a link's id, a
            # conversation's): none of them may open it. His key itself is never sent.
            in_path[name] = thing.ident
            path_names_victim = True
            own_path[name] = (await world.own_thing(param.kind)).ident
            continue
        in_path[name] = thing.ident
        path_names_victim |= isinstance(param, str) and thing.is_a(param)
        own_kind = param if param in KINDS else thing.kind
        own_path[name] = (await world.own_thing(own_kind)).ident

    found: list[Probe] = []
    unsafe = method != "GET"
    takes_path = any(not isinstance(declared.params.get(name), Text) for name in route.kwargs)
    if takes_path or route.catch_all:
        url = route.url_with(in_path, suffix=str(thing.ident))
        if _resolves_to(url, route):
            found.append(
                Probe(
                    method,
                    url,
                    values,
                    values if unsafe else None,
                    False,
                    path_names_victim or names_victim,
                    "path (and every field)",
                )
            )
    refused_unread = (known and method not in declared.methods) or declared.staff
    if found and refused_unread:
        return found  # refused before anything is read: one probe is enough
    url = route.url_with(own_path, suffix="")
    if not _resolves_to(url, route):
        return found
    if refused_unread or not unsafe:
        found.append(Probe(method, url, values, None, False, names_victim, "query string"))
        return found
    # A view reading either the query or the form gets the victim's object from this one.
    found.append(Probe(method, url, values, values, False, names_victim, "query string and form body"))
    found.append(Probe(method, url, {}, values, True, names_victim, "JSON body"))
    return found


class Callers:
    """Two clients per caller, signed in as the attacker again whenever a probe signed him out.

    Sync views get Django's synchronous test client, run in the thread async code runs
    sync work on: half the cost of the async client (no thread hop per middleware).
    Async views get the async client, so that the replies they start run on the test's
    event loop and outlive the request, as they do in production.
    """

    def __init__(self, world: World) -> None:
        self.world = world
        self.clients: dict[tuple[Caller, bool], Client | AsyncClient] = {}

    async def client(self, caller: Caller, asynchronous: bool) -> Client | AsyncClient:
        client = self.clients.get((caller, asynchronous))
        if client is None:
            if asynchronous:
                client = AsyncClient(raise_request_exception=False)
                if caller.cookie:
                    await client.aforce_login(self.world.attacker)
            else:
                client = Client(raise_request_exception=False)
                if caller.cookie:
                    await sync_to_async(client.force_login)(self.world.attacker)
            self.clients[caller, asynchronous] = client
        return client

    async def send(self, caller: Caller, probe: Probe, route: Route) -> tuple[HttpResponseBase, bytes]:
        asynchronous = iscoroutinefunction(route.callback)
        client = await self.client(caller, asynchronous)
        headers = {"Authorization": f"Bearer {self.world.attacker_token}"} if caller.token else {}
        url = f"{probe.url}?{urlencode(probe.query)}" if probe.query else probe.url
        if probe.body is None:
            data, content_type = "", "application/octet-stream"
        elif probe.json:
            data, content_type = json.dumps(dict(probe.body)), "application/json"
        else:
            data, content_type = urlencode(probe.body), "application/x-www-form-urlencoded"
        arguments = (probe.method, url, data)
        options: dict[str, Any] = {"content_type": content_type, "headers": headers}
        response: Any
        if isinstance(client, AsyncClient):
            response = await client.generic(*arguments, **options)
        else:
            response = await sync_to_async(partial(client.generic, *arguments, **options))()
        body = await asyncio.wait_for(_body(response), STREAM_WITHIN)
        if settings.SESSION_COOKIE_NAME in response.cookies:  # signed in, out or again: start afresh
            self.clients.pop((caller, asynchronous), None)
        return response, body


async def _body(response: Any) -> bytes:
    if not response.streaming:
        return bytes(response.content)
    content = response.streaming_content
    if hasattr(content, "__aiter__"):
        return b"".join([bytes(chunk) async for chunk in content])
    return await sync_to_async(lambda: b"".join(bytes(chunk) for chunk in content))()


def _everything(response: Any, body: bytes) -> bytes:
    headers = "\n".join(f"{name}: {value}" for name, value in response.items())
    return body + b"\n" + headers.encode() + b"\n" + response.cookies.output().encode()


def _refused(response: Any, declared: Declared, signed_out: bool) -> bool:
    status = response.status_code
    if status in REFUSALS:
        return True
    if status in REDIRECTS and (signed_out or declared.staff):
        # The sign-in page; for the admin also its own (and its index, which sends on there).
        places = (resolve_url(settings.LOGIN_URL), *(["/admin/"] if declared.staff else []))
        return str(response.get("Location", "")).startswith(places)
    return False


def verdict(probe: Probe, response: Any, caller: Caller, declared: Declared, known: bool) -> str | None:
    """What is wrong with the answer's status, if anything."""
    status = response.status_code
    signed_out = caller.signed_out_for(declared)
    if status >= 500:
        return f"answered {status}"
    if declared.staff:  # whatever it names: nobody here is staff
        ok = _refused(response, declared, True) or status == 405
        return None if ok else f"answered {status} to someone who is not staff"
    if known and probe.method not in declared.methods and not declared.public:
        ok = _refused(response, declared, signed_out) or status == 405
        return None if ok else f"answered {status} to a method it does not accept"
    if signed_out and not declared.public and not _refused(response, declared, True):
        return f"answered {status} to a caller who is not signed in"
    # (A public route may answer a method it does not take with 405 before it reads anything.)
    unread = status == 405 and known and probe.method not in declared.methods
    if probe.names_victim and not signed_out and status not in REFUSALS and not unread:
        return f"answered {status} when a parameter named the victim's object (401, 403 or 404 expected)"
    return None


async def http_findings(
    routes: Sequence[Route], world: World, table: Mapping[str, Declared] = ROUTES
) -> list[Finding]:
    """Everything wrong with these routes: undeclared parameters, leaks, wrong answers, changes."""
    findings: list[Finding] = []
    callers = Callers(world)
    before = await world.state()
    for route in routes:
        findings += bookkeeping(route, table)
        declared = declared_for(route, table)
        known = declared is not None
        if declared is None:  # nothing known: every method, every caller, every field
            declared = Declared(frozenset(SWEPT_METHODS), api=True)
        fields = candidate_fields(route, table)
        who = [SIGNED_OUT, BY_COOKIE] + ([BY_TOKEN] if declared.api else [])
        # The admin sends anyone but staff away before it reads anything: there, one object
        # of each model is enough.
        things = (
            list({t.model: t for t in reversed(world.victims)}.values()) if declared.staff else world.victims
        )
        sent = 0
        served: set[Caller] = set()  # the callers some probe was answered for: they were let in
        for caller in who:
            for method in SWEPT_METHODS:
                if declared.staff and method not in declared.methods:
                    continue
                for thing in things:
                    for probe in await probes(route, declared, known, method, thing, world, fields):
                        response, body = await callers.send(caller, probe, route)
                        sent += 1
                        request = probe.describe(caller, thing)
                        leaks = world.leaks_in(_everything(response, body))
                        if leaks:
                            findings.append(
                                Finding(route.name, f"shows the victim's {', '.join(leaks)}", request)
                            )
                        wrong = verdict(probe, response, caller, declared, known)
                        if wrong:
                            findings.append(Finding(route.name, wrong, request))
                        acted = settings.SESSION_COOKIE_NAME in response.cookies  # signed in or out
                        if acted or (response.status_code != 405 and not _refused(response, declared, True)):
                            served.add(caller)
        if not sent:
            findings.append(Finding(route.name, "the sweep could build no URL for it"))
        # A control: were the attacker's cookie and token accepted at all? If not, every
        # refusal above proves nothing.
        if known and not (declared.public or declared.staff or route.name in NOT_FOUND_ROUTES):
            for caller in set(who) - served - {SIGNED_OUT}:
                findings.append(Finding(route.name, f"never served {caller.name}: the sweep proves nothing"))
        await settle(world)
        if (after := await world.state()) != before:
            findings.append(Finding(route.name, f"changed the victim's data ({state_change(before, after)})"))
            before = after
    return findings
