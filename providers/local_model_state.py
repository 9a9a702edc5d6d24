"""Whether the built-in local model is ready yet.

`./run` serves the site at once and prepares the local model meanwhile (a first run
downloads it and compiles llama-server for minutes). The launcher writes how far it
has got to a small JSON file named by CHATSITE_LOCAL_MODEL_STATE_FILE; every serving
process reads it, so the page can show the progress and a message sent too early gets
a clear answer instead of a connection error. A file, not Redis: the local model is on
loopback, so it and everything that reads its state are on this one host.

No file (or no setting) means nothing is being prepared.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.utils.translation import gettext as _


@dataclass(frozen=True)
class LocalModelState:
    # "preparing", "ready" or "failed"
    phase: str
    # While preparing: "downloading", "waiting" (another process is preparing it),
    # "building" or "starting".
    stage: str = ""
    percent: int | None = None  # of the build
    reason: str = ""  # why it failed, and what to do

    @property
    def preparing(self) -> bool:
        return self.phase == "preparing"

    @property
    def failed(self) -> bool:
        return self.phase == "failed"


def local_model_state_write(path: Path, state: LocalModelState) -> None:
    """Replaces the file whole (a reader never sees half of it)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(asdict(state)))
    partial.replace(path)


def local_model_state() -> LocalModelState | None:
    """The local model's state while it is being prepared or has failed; None otherwise.

    Read each time (tens of microseconds, and only where ./run started the local model):
    a cache keyed on the file's mtime could miss a change made within the clock's tick
    and refuse messages to a model that is ready."""
    name = settings.CHATSITE_LOCAL_MODEL_STATE_FILE
    return _read(Path(name)) if name else None


def _read(path: Path) -> LocalModelState | None:
    try:
        values = json.loads(path.read_text())
        state = LocalModelState(
            phase=str(values["phase"]),
            stage=str(values.get("stage", "")),
            percent=values.get("percent"),
            reason=str(values.get("reason", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # gone or unreadable: treated as ready; a reply then says what failed
    return None if state.phase == "ready" else state


def _step(state: LocalModelState) -> str:
    if state.stage == "downloading":
        return _("downloading it")
    if state.stage == "waiting":
        return _("waiting for another process that is preparing it")
    if state.stage == "building" and state.percent is not None:
        return _("compiling its server: %(percent)s%%") % {"percent": state.percent}
    if state.stage == "building":
        return _("compiling its server")
    return _("starting it")


def local_model_state_note(state: LocalModelState) -> str:
    """What the page says while the local model is not there."""
    if state.failed:
        return _(
            "No model is available: the built-in local model could not be prepared on this "
            "server (its console says why). Connect a provider (OpenAI, Ollama, vLLM, LM Studio) in .env."
        )
    return _(
        "The built-in local model is being prepared (%(step)s). Chat works as soon as it is "
        "ready; this note updates by itself."
    ) % {"step": _step(state)}


def local_model_state_refusal(state: LocalModelState) -> str:
    """What a message sent before the local model is there is answered."""
    if state.failed:
        return local_model_state_note(state)
    return _("The built-in local model is not ready yet (%(step)s). Try again in a minute.") % {
        "step": _step(state)
    }
