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
can show it catches routes that leak.
"""

import ast
import asyncio
import inspect
import json
import re
import textwrap
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from asgiref.sync import iscoroutinefunction, sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.http import HttpResponseBase
from django.shortcuts import resolve_url
from django.test import AsyncClient, Client
from django.urls import Resolver404, resolve

from conversations import generation
from conversations.routing import websocket_urlpatterns
from conversations.services import message_send
from tests.conftest import session_cookie_for
from tests.security.routes import (
    DISPATCH_FIELDS,
    NOT_FOUND_ROUTES,
    ROUTES,
    SOCKET_ACTIONS,
    SOCKET_PATH_PARAMS,
    SWEPT_METHODS,
    Declared,
    Param,
    Route,
    Text,
    declared_for,
)
from tests.security.victims import ANY_KIND, KINDS, Thing, World, marker

PROJECT_PACKAGES = frozenset({"chatsite", "conversations", "roles", "tests"})
BASE_DIR = Path(__file__).resolve().parents[2]
# Any field name a view or an action might read an object's id from, whether declared or not.
ID_NAMES = frozenset({"id", "pk", "uuid", "object_id", *KINDS, *(f"{kind}_id" for kind in KINDS)})
ERROR_FRAGMENT = 'id="composer-error"'
UNKNOWN_ACTION = "Unknown action."
SENTINEL = "not json"  # a frame the consumer always answers at once, with the same error
REDIRECTS = frozenset({301, 302, 303, 307, 308})
REFUSALS = frozenset({401, 403, 404})
STREAM_WITHIN = 15.0  # seconds an answer's stream may take (the attacker's own replies)
QUIET_WINDOW = 0.3  # seconds a socket is listened to for frames that come late


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


# --- What the code reads: string constants found by walking its syntax tree ------------------

# Receivers whose keys are not the caller's parameters (headers, settings, scope, answers).
_NOT_PARAMS = re.compile(r"headers|META|COOKIES|cookies|session|scope|event|settings|response|environ", re.I)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _source_tree(function: Callable[..., Any]) -> ast.AST | None:
    try:
        # The code's own source: getsource(function) would follow @wraps to the wrapped one.
        return ast.parse(textwrap.dedent(inspect.getsource(getattr(function, "__code__", function))))
    except (OSError, TypeError, SyntaxError):
        return None


def _is_project(obj: Any) -> bool:
    """Written in this project (a decorator's wrapper copies the module name of what it wraps)."""
    code = getattr(obj, "__code__", None)
    if code is not None:
        path = Path(code.co_filename).resolve()
        return path.is_relative_to(BASE_DIR) and ".venv" not in path.parts
    return (getattr(obj, "__module__", None) or "").split(".")[0] in PROJECT_PACKAGES


def view_functions(callback: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """The project's own code behind a URL callback: its decorators' wrappers, the view
    they wrap, and a class-based view's methods."""
    seen: set[int] = set()
    function: Any = callback
    while function is not None and id(function) not in seen:
        seen.add(id(function))
        if _is_project(function):
            yield function
        function = getattr(function, "__wrapped__", None)
    view_class = getattr(callback, "view_class", None)
    for cls in getattr(view_class, "__mro__", ()):
        if _is_project(cls):
            yield from (f for f in vars(cls).values() if inspect.isfunction(f))


def _constant(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


_PARAMS_NAME = re.compile(r"\b(params|data|request|query|body|payload)\b")


def fields_read(functions: Iterable[Callable[..., Any]]) -> set[str]:
    """Keys the functions read from the caller's parameters: `x.get("k")`, `x["k"]`,
    `"k" in x`, and helpers called with the parameters and a key (`_required(params, "k")`).
    The project's helpers they hand the parameters to are read too."""
    found: set[str] = set()
    pending = list(functions)
    seen: set[int] = set()
    while pending:
        function = pending.pop()
        if id(function) in seen:
            continue
        seen.add(id(function))
        tree = _source_tree(function)
        if tree is None:
            continue
        for node in ast.walk(tree):
            keys: list[str | None] = []
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
                if not _NOT_PARAMS.search(ast.unparse(node.value)):
                    keys.append(_constant(node.slice))
            elif isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Attribute) and func.attr in {"get", "getlist", "pop", "__getitem__"}:
                    if node.args and not _NOT_PARAMS.search(ast.unparse(func.value)):
                        keys.append(_constant(node.args[0]))
                elif any(isinstance(arg, ast.Name) and _PARAMS_NAME.search(arg.id) for arg in node.args):
                    keys += [_constant(arg) for arg in node.args]
                    helper = (
                        getattr(function, "__globals__", {}).get(func.id)
                        if isinstance(func, ast.Name)
                        else None
                    )
                    if inspect.isfunction(helper) and _is_project(helper):
                        pending.append(helper)
            elif (
                isinstance(node, ast.Compare)
                and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops)
                and not any(_NOT_PARAMS.search(ast.unparse(c)) for c in node.comparators)
            ):
                keys.append(_constant(node.left))
            found |= {key for key in keys if key and _IDENTIFIER.match(key)}
    return found


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
        if isinstance(param, str) and param not in KINDS and param != ANY_KIND:
            findings.append(Finding(route.name, f"{name!r} names an unknown kind {param!r}: add it to KINDS"))
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


async def _value(param: Param | None, thing: Thing, world: World) -> tuple[Any, bool]:
    """What a parameter carries in a probe of `thing`, and whether it names the victim's object."""
    if param is None:
        return thing.ident, False  # undeclared: the victim's object, whatever the view does with it
    if isinstance(param, Text):
        return param.value, False
    if thing.is_a(param):
        return thing.ident, True
    if param in KINDS:
        return (await world.own_thing(param)).ident, False
    return thing.ident, False


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
        values[name], named = await _value(declared.params.get(name), thing, world)
        names_victim |= named

    in_path: dict[str, Any] = {}
    own_path: dict[str, Any] = {}
    path_names_victim = False
    for name in route.kwargs:
        param = declared.params.get(name)
        if isinstance(param, Text):
            in_path[name] = own_path[name] = param.value
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
    if probe.names_victim and not signed_out and status not in REFUSALS:
        return f"answered {status} when a parameter named the victim's object (401, 403 or 404 expected)"
    return None


async def settle(world: World) -> None:
    """Wait for the replies the attacker's own requests started (not the victim's, still written)."""
    busy = world.busy_reply.pk if world.busy_reply else None
    for reply_id in generation.running_ids() - {busy}:
        await asyncio.wait_for(generation.wait(reply_id), STREAM_WITHIN)


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
            findings.append(Finding(route.name, "changed the victim's data"))
            before = after
    return findings


# --- WebSockets --------------------------------------------------------------------------------

_ACTION_WORD = re.compile(r"(^|_)actions?($|_)", re.I)


def _mentions_action(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and _ACTION_WORD.search(sub.id):
            return True
        if isinstance(sub, ast.Attribute) and _ACTION_WORD.search(sub.attr):
            return True
        if _constant(sub) == "action":
            return True
    return False


def _strings(node: ast.AST, collections: Mapping[str, set[str]]) -> set[str]:
    """The strings a node stands for: a constant, a literal set/list/tuple/dict of them, or a
    module- or class-level collection it names."""
    if (value := _constant(node)) is not None:
        return {value}
    if isinstance(node, ast.Set | ast.List | ast.Tuple):
        return {v for e in node.elts if (v := _constant(e)) is not None}
    if isinstance(node, ast.Dict):
        return {v for k in node.keys if k is not None and (v := _constant(k)) is not None}
    if isinstance(node, ast.Name | ast.Attribute):
        return set(collections.get(node.id if isinstance(node, ast.Name) else node.attr, set()))
    if isinstance(node, ast.Call) and node.args:  # frozenset({...}), dict(...), set([...])
        return _strings(node.args[0], collections)
    return set()


def actions_in_source(consumer: type) -> set[str]:
    """The action names a consumer's dispatch compares, matches or looks up `action` against."""
    module = inspect.getmodule(consumer)
    assert module is not None
    tree = ast.parse(inspect.getsource(module))
    collections: dict[str, set[str]] = {}
    classes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == consumer.__name__]
    for scope in [tree, *classes]:
        for node in getattr(scope, "body", []):
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign):
                targets = [node.target]
            else:
                continue
            value = node.value
            for target in targets:
                if isinstance(target, ast.Name) and value is not None:
                    collections[target.id] = _strings(value, {})
    methods = {name for name, _ in inspect.getmembers(consumer, inspect.isfunction)}
    found: set[str] = set()
    for node in ast.walk(classes[0] if classes else tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_mentions_action(side) for side in sides):
                for side in sides:
                    if _names_collection(side, collections) or not _mentions_action(side):
                        found |= _strings(side, collections)
        elif isinstance(node, ast.Match) and _mentions_action(node.subject):
            for case in node.cases:
                found |= {v for sub in ast.walk(case.pattern) if (v := _constant(sub)) is not None}
        elif isinstance(node, ast.Subscript) and _mentions_action(node.slice):
            found |= _strings(node.value, collections)
        elif isinstance(node, ast.Call):
            func = node.func
            args = node.args
            if isinstance(func, ast.Attribute) and func.attr == "get" and args:
                if _constant(args[0]) == "action" and len(args) > 1:
                    found |= _strings(args[1], collections)  # the default action
                elif _mentions_action(args[0]):
                    found |= _strings(func.value, collections)
            elif isinstance(func, ast.Name) and func.id == "getattr" and len(args) > 1:
                # getattr(self, f"do_{action}") or "do_" + action: the methods the name fits.
                fits = _name_around_action(args[1])
                if fits is not None:
                    prefix, suffix = fits
                    found |= {
                        m[len(prefix) : len(m) - len(suffix) or None]
                        for m in methods
                        if m.startswith(prefix) and m.endswith(suffix) and len(m) > len(prefix) + len(suffix)
                    }
    return found


def _names_collection(node: ast.AST, collections: Mapping[str, set[str]]) -> bool:
    """`ACTIONS` or `self.actions`: a module- or class-level collection of names."""
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
    return name is not None and bool(collections.get(name))


def _name_around_action(node: ast.AST) -> tuple[str, str] | None:
    """(prefix, suffix) of a name built around `action`: f"do_{action}", "do_" + action."""
    if not _mentions_action(node):
        return None
    if isinstance(node, ast.JoinedStr):
        parts = [_constant(v) for v in node.values]
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        parts = [_constant(node.left), None, _constant(node.right)]
    else:
        return None
    prefix = parts[0] if parts and parts[0] is not None else ""
    suffix = parts[-1] if len(parts) > 1 and parts[-1] is not None else ""
    return prefix, suffix


def frame_fields_in_source(consumer: type) -> set[str]:
    """The frame fields a consumer's methods read (`data.get("conversation")`...)."""
    own = [f for name, f in vars(consumer).items() if inspect.isfunction(f)]
    return fields_read(own)


def action_candidates(consumer: type) -> set[str]:
    """Every string that might be an action name: the consumer module's identifier-like
    constants, its method names and their parts, and what the page's forms and script send."""
    module = inspect.getmodule(consumer)
    assert module is not None
    candidates = {
        value
        for node in ast.walk(ast.parse(inspect.getsource(module)))
        if (value := _constant(node)) is not None and _IDENTIFIER.match(value) and len(value) < 40
    }
    for name, _ in inspect.getmembers(consumer, inspect.isfunction):
        candidates |= {name, *name.strip("_").split("_")}
    for page in [*(BASE_DIR / "templates").rglob("*.html"), *(BASE_DIR / "static" / "chat").glob("*.js")]:
        text = page.read_text()
        candidates |= set(re.findall(r'name="action"\s+value="([\w-]+)"', text))
        candidates |= set(re.findall(r"""\baction["']?\s*:\s*["']([\w-]+)["']""", text))
    return {c for c in candidates if c}


acookie = sync_to_async(session_cookie_for)


async def open_socket(application: Any, user: Any, path: str) -> tuple[WebsocketCommunicator, bool, Any]:
    headers = [(b"origin", b"http://localhost")]
    if user is not None:
        headers.append((b"cookie", (await acookie(user)).encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


class Socket:
    """A connected socket that tells the answer to one frame from what comes after."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator
        self.sentinel_answer = ""
        self.late: list[str] = []

    async def start(self) -> "Socket":
        self.late += await self.listen()  # a page that connects mid-reply is sent the reply so far
        await self.communicator.send_to(text_data=SENTINEL)
        self.sentinel_answer = await self.communicator.receive_from(timeout=5)
        return self

    async def ask(self, frame: str) -> list[str]:
        """The frames the consumer sends in answer to `frame` (it handles one frame at a time)."""
        await self.communicator.send_to(text_data=frame)
        await self.communicator.send_to(text_data=SENTINEL)
        answer = []
        while (received := await self.communicator.receive_from(timeout=5)) != self.sentinel_answer:
            answer.append(received)
        return answer

    async def listen(self, window: float = QUIET_WINDOW) -> list[str]:
        """The frames that come within `window` of each other (a timeout would end the socket)."""
        frames = []
        while not await self.communicator.receive_nothing(timeout=window):
            frames.append(await self.communicator.receive_from(timeout=5))
        return frames


async def frames_for(
    action: str | None, fields: Mapping[str, Param], all_fields: Sequence[str], thing: Thing, world: World
) -> list[tuple[dict[str, Any], bool, str]]:
    """(frame, whether a declared field carries the victim's object of its kind, variant) to send."""
    head = {} if action is None else {"action": action}
    every = {**head, **dict.fromkeys(all_fields, thing.ident)}
    names_something = any(not isinstance(p, Text) for p in fields.values())
    frames = [(every, names_something, "the victim's id in every field")]
    matching = [name for name, p in fields.items() if isinstance(p, str) and thing.is_a(p)]
    if action is None or not matching:
        return frames
    filled: dict[str, Any] = {}
    bare: dict[str, Any] = {}
    for name in all_fields:
        value, _named = await _value(fields.get(name), thing, world)
        filled[name] = value
        param = fields.get(name)
        if not (isinstance(param, str) and not thing.is_a(param)):
            bare[name] = value
    frames.append(({**head, **filled}, True, "the victim's id where its kind goes, the attacker's elsewhere"))
    if bare != filled:
        frames.append(({**head, **bare}, True, "the victim's id where its kind goes, nothing elsewhere"))
    return frames


async def socket_findings(
    application: Any,
    route: Route,
    world: World,
    consumer: type,
    actions: Mapping[str, Mapping[str, Param]] = SOCKET_ACTIONS,
) -> list[Finding]:
    """Everything wrong with one socket route: a handshake on the victim's objects, and every
    action from the attacker's socket with the victim's ids in every field."""
    where = f"socket {route.route}"
    findings: list[Finding] = []
    for name in route.kwargs:
        if name not in SOCKET_PATH_PARAMS:
            findings.append(Finding(where, f"path parameter {name!r} is not declared"))
    before = await world.state()

    # The handshake, on each of the victim's objects the route's converter takes.
    if route.kwargs:
        for thing in world.victims:
            url = route.url(str(thing.ident))
            if not _ws_resolves(url):
                continue
            for user, who in [(world.attacker, "the attacker"), (None, "signed out")]:
                communicator, connected, _code = await open_socket(application, user, url)
                if connected:
                    frames = await Socket(communicator).listen()
                    await communicator.disconnect()
                    leaks = world.leaks_in("".join(frames).encode())
                    findings.append(
                        Finding(where, f"accepted {who} on the victim's {thing}, leaking {leaks}")
                    )

    # Every action, from the attacker's own socket (on his own conversation when the route names one).
    own_conversation = await world.own_thing("conversation")
    path = route.url(str(own_conversation.ident)) if route.kwargs else route.url("")
    communicator, connected, _code = await open_socket(application, None, path)
    if connected:
        await communicator.disconnect()
        findings.append(Finding(where, "accepted a socket signed out"))
    communicator, connected, _code = await open_socket(application, world.attacker, path)
    if not connected:
        return [*findings, Finding(where, "refused the attacker's socket on his own conversation")]
    socket = await Socket(communicator).start()
    declared_fields = {name for fields in actions.values() for name in fields}
    all_fields = sorted({*ID_NAMES, *frame_fields_in_source(consumer), *declared_fields} - DISPATCH_FIELDS)
    for action in [*actions, None]:
        # A frame with no action is dispatched as some action: any field may be read.
        fields = (
            actions[action] if action is not None else {k: v for a in actions.values() for k, v in a.items()}
        )
        label = f"action {action!r}" if action is not None else "a frame with no action"
        for thing in world.victims:
            for frame, must_refuse, variant in await frames_for(action, fields, all_fields, thing, world):
                request = f"{label}, {variant}, with the victim's {thing}"
                try:
                    answer = await socket.ask(json.dumps(frame))
                except Exception as exc:  # the consumer raised, or stopped answering
                    return [*findings, Finding(where, f"the socket died: {exc!r}", request)]
                leaks = world.leaks_in("\n".join(answer).encode())
                if leaks:
                    findings.append(Finding(where, f"shows the victim's {', '.join(leaks)}", request))
                if must_refuse and not all(ERROR_FRAGMENT in f for f in answer):
                    first = next(f for f in answer if ERROR_FRAGMENT not in f)
                    findings.append(Finding(where, f"answered more than an error: {first[:200]!r}", request))
        await settle(world)
        if await world.state() != before:
            findings.append(Finding(where, f"{label} changed the victim's data"))
            before = await world.state()

    # The victim writes on in her conversation: nothing of it reaches the attacker's socket
    # (it never joined her conversation's group).
    quiet = next(
        t for t in world.victims if t.kind == "conversation" and t.obj.pk != world.busy_conversation_id
    )
    exchange = await message_send(
        owner=world.victim, conversation_id=quiet.obj.pk, content=marker(world.markers, "later message")
    )
    await asyncio.wait_for(generation.wait(exchange.reply.pk), STREAM_WITHIN)
    late = socket.late + await socket.listen()
    leaks = world.leaks_in("\n".join(late).encode())
    if leaks:
        findings.append(Finding(where, f"sent the victim's {', '.join(leaks)} later"))

    # A control: the same socket acts on the attacker's own objects, or every refusal
    # above proves nothing.
    served = False
    for action, fields in actions.items():
        own_frame: dict[str, Any] = {"action": action}
        for name, param in fields.items():
            own_frame[name] = param.value if isinstance(param, Text) else (await world.own_thing(param)).ident
        served |= any(ERROR_FRAGMENT not in f for f in await socket.ask(json.dumps(own_frame)))
    if not served:
        findings.append(Finding(where, "refused every action on the attacker's own objects too"))
    await settle(world)
    await communicator.disconnect()
    return findings


def _ws_resolves(url: str) -> bool:
    return any(pattern.pattern.match(url.lstrip("/")) for pattern in websocket_urlpatterns)


async def action_findings(
    application: Any, world: World, consumer: type, actions: Iterable[str]
) -> list[Finding]:
    """Whether the declared actions are exactly the ones the consumer dispatches on.

    Every candidate name is sent to a real socket: the consumer answers an unknown one with
    its "Unknown action." error, and must answer every declared one otherwise.
    """
    declared = set(actions)
    where = "socket actions"
    findings = [
        Finding(where, f"the consumer's source dispatches on {name!r}, which is not declared")
        for name in sorted(actions_in_source(consumer) - declared)
    ]
    declared_fields = {name for fields in SOCKET_ACTIONS.values() for name in fields}
    for name in sorted(frame_fields_in_source(consumer) - DISPATCH_FIELDS - declared_fields):
        findings.append(Finding(where, f"the consumer reads the frame field {name!r}, no action declares it"))
    communicator, connected, _code = await open_socket(application, world.attacker, "/ws/chat/")
    assert connected
    socket = await Socket(communicator).start()
    unknown = await socket.ask(json.dumps({"action": "zz-no-such-action-zz"}))
    if len(unknown) != 1 or UNKNOWN_ACTION not in unknown[0]:
        findings.append(Finding(where, f"an unknown action was not answered {UNKNOWN_ACTION!r}: {unknown!r}"))
    for name in sorted(action_candidates(consumer) | declared):
        answer = await socket.ask(json.dumps({"action": name}))
        dispatched = answer != unknown
        if dispatched and name not in declared:
            findings.append(
                Finding(where, f"the consumer dispatches {name!r}, not declared: {answer!r}"[:300])
            )
        if not dispatched and name in declared:
            findings.append(Finding(where, f"{name!r} is declared, but the consumer does not know it"))
    await settle(world)
    await communicator.disconnect()
    return findings
