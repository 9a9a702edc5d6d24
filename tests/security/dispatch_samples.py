"""Consumers that dispatch their actions in the ways a consumer may, for testing the sweep's
source scan (tests/security/sweep_source.py, actions_in_source). Never routed."""

from typing import Any

HANDLERS = {"archive": "do_archive", "pin": "do_pin"}


class ByTable:
    def receive(self, data: dict[str, Any]) -> Any:
        handler = HANDLERS.get(data.get("action", "pin"))
        return handler


class ByMatch:
    def receive(self, data: dict[str, Any]) -> str:
        match data["action"]:
            case "share":
                return "shared"
            case "export" | "import":
                return "moved"
        return "unknown"


class ByMethodName:
    def receive(self, data: dict[str, Any]) -> Any:
        action = str(data.get("action"))
        return getattr(self, f"do_{action}", None)

    def do_rename(self) -> None: ...

    def do_fork(self) -> None: ...


class ByClassTable:
    actions = frozenset({"star", "unstar"})

    def receive(self, data: dict[str, Any]) -> bool:
        return data.get("action") in self.actions
