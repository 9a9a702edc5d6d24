"""What the code reads, found by walking its syntax tree: the parameter names a view takes
from a request, and the actions and frame fields the socket consumer dispatches on.
Part of the isolation sweep (tests/security/sweep.py)."""

import ast
import inspect
import re
import textwrap
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tests.security.sweep import (
    BASE_DIR,
    PROJECT_PACKAGES,
)

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
