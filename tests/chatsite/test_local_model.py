"""The built-in local model, for real: llama-server (compiled on first use, then cached in
~/.cache/chatsite/local-model/) serving SmolLM2 to the openai SDK over loopback."""

import fcntl
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from openai import AsyncOpenAI, AuthenticationError

from chatsite import local_model, local_model_build
from chatsite.local_model import LocalModelServer, start_local_model
from chatsite.local_model_build import LocalModelUnavailable
from conversations import hub


def _progress(line: str) -> None:
    print(line, file=sys.stderr)  # shown with -s: the first run compiles for minutes


@pytest.fixture(scope="module")
def server() -> Iterator[LocalModelServer]:
    try:
        started = start_local_model(_progress)
    except LocalModelUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the local model, but it is unavailable: {exc.reason}")
        pytest.skip(f"The local model is unavailable on this machine: {exc.reason}")
    with started:
        yield started


async def test_streams_a_chat_completion_through_the_openai_sdk(server: LocalModelServer):
    deltas: list[str] = []
    finish_reasons: list[str] = []
    async with AsyncOpenAI(
        base_url=server.base_url, api_key=server.api_key, timeout=60, max_retries=0
    ) as client:
        stream = await client.chat.completions.create(
            model=server.model,
            messages=[{"role": "user", "content": "Say hello in one short sentence."}],
            stream=True,
            max_tokens=32,
        )
        async for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    deltas.append(choice.delta.content)
                if choice.finish_reason:
                    finish_reasons.append(choice.finish_reason)

    assert "".join(deltas).strip()
    assert finish_reasons in (["stop"], ["length"])


async def test_lists_the_model_under_its_alias(server: LocalModelServer):
    async with AsyncOpenAI(
        base_url=server.base_url, api_key=server.api_key, timeout=10, max_retries=0
    ) as client:
        models = await client.models.list()

    assert server.model in [model.id for model in models.data]


async def test_refuses_a_client_without_its_key(server: LocalModelServer):
    async with AsyncOpenAI(base_url=server.base_url, api_key="wrong", timeout=10, max_retries=0) as client:
        with pytest.raises(AuthenticationError):
            await client.models.list()


def test_stop_leaves_no_process(server: LocalModelServer):
    second = LocalModelServer(binary=server.binary, model_path=server.model_path, parallel=1)
    with second:
        assert second.process is not None
        pid, port = second.process.pid, second.port
        assert port is not None

    assert second.process is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_missing_build_tool_is_a_clear_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("CHATSITE_LOCAL_MODEL_CACHE", str(tmp_path / "not-built"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no cmake, make or compiler on it

    with pytest.raises(LocalModelUnavailable, match="needs cmake, make, a C\\+\\+ compiler"):
        local_model_build.ensure_server_binary(_progress)


# --- The app on the local model: what `./run` does with no provider configured ---------


@pytest.mark.django_db(transaction=True)
async def test_the_app_streams_a_reply_from_the_local_model(
    server: LocalModelServer, alice, builtin_roles, settings
):
    from conversations.sending import message_send
    from conversations.services import conversation_create
    from tests.conftest import wait_for_reply

    settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = server.base_url, server.api_key
    settings.OPENAI_MODEL = server.model
    conversation = await sync_to_async(conversation_create)(owner=alice, role_slug="assistant")
    exchange = await message_send(owner=alice, conversation_id=conversation.pk, content="Say hello.")
    deltas = [event.text async for event in hub.follow(reply_id=exchange.reply.pk) if event.kind == "delta"]
    reply = await wait_for_reply(exchange.reply.pk, within=60)

    assert reply.status == "complete"
    assert reply.content.strip()
    assert "".join(deltas) == reply.content  # streamed, then saved whole
    # The tiny model's replies are capped: it can ramble on without ever ending one.
    assert reply.completion_tokens is not None and reply.completion_tokens <= local_model.MAX_REPLY_TOKENS


def test_run_without_a_provider_chats_with_the_local_model(server: LocalModelServer, tmp_path: Path):
    from tests.chatsite.test_launcher import run_manage, start_launcher, wait_until_serving

    process, port = start_launcher(
        tmp_path,
        CHATSITE_LOCAL_MODEL="on",
        CHATSITE_ADMIN_USER="boss",
        CHATSITE_ADMIN_PASSWORD="a-long-admin-password-1",
    )
    try:
        wait_until_serving(port, process, timeout=120)
        token = run_manage(tmp_path, "api_token", "create", "--user", "boss").strip()
        events = _chat_once_ready(port, token, within=60)  # it serves before the model is loaded
        check = run_manage(tmp_path, "llm_check")  # operators' commands use the same local model
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)

    assert "Model:     smollm2-135m-instruct at http://127.0.0.1:" in output
    assert "tiny local model" in output
    chunks = [e["content"] for e in events if e["type"] == "chunk"]
    assert "".join(chunks).strip()
    assert events[-1]["type"] == "end" and events[-1]["status"] == "complete"
    assert "ok   model listed: smollm2-135m-instruct" in check
    model_port = int(re.search(r"smollm2-135m-instruct at http://127\.0\.0\.1:(\d+)", output).group(1))  # type: ignore[union-attr]
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", model_port)) != 0  # Ctrl-C stopped the model too


def _post_a_message(port: int, token: str) -> tuple[int, dict[str, str], str]:
    """A new session and a message in it over the demo's API: the stream's status, headers, body."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("POST", "/chat/start", body=json.dumps({"role": "assistant"}), headers=headers)
        session_id = json.loads(connection.getresponse().read())["session_id"]
        body = json.dumps({"session_id": session_id, "message": "Say hello in one sentence."})
        connection.request("POST", "/chat/stream", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


def _chat_over_the_api(port: int, token: str) -> list[dict[str, str]]:
    stream = _post_a_message(port, token)[2]
    return [json.loads(line[6:]) for line in stream.splitlines() if line.startswith("data: ")]


def test_run_serves_at_once_while_the_local_model_is_prepared_and_chats_once_it_is_ready(
    server: LocalModelServer, tmp_path: Path
):
    from tests.chatsite.test_launcher import run_manage, start_launcher, wait_until_serving

    cache = tmp_path / "cache"
    cache.mkdir()
    # Another process holds the cache's lock, as one that is compiling the model would:
    # this launcher's preparation waits for it, for as long as the test says.
    with (cache / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        process, port = start_launcher(
            tmp_path,
            CHATSITE_LOCAL_MODEL="on",
            CHATSITE_LOCAL_MODEL_CACHE=str(cache),
            CHATSITE_ADMIN_USER="boss",
            CHATSITE_ADMIN_PASSWORD="a-long-admin-password-1",
        )
        try:
            wait_until_serving(port, process, timeout=60)
            token = run_manage(tmp_path, "api_token", "create", "--user", "boss").strip()
            status, headers, body = _post_a_message(port, token)
            # The other process finishes: the built server and the model are in the cache.
            for built in (local_model_build.build_dir(), local_model_build.model_dir()):
                shutil.copytree(built, cache / built.name, copy_function=os.symlink)
            fcntl.flock(lock, fcntl.LOCK_UN)
            events = _chat_once_ready(port, token, within=120)
        finally:
            process.send_signal(signal.SIGINT)
            output, _ = process.communicate(timeout=30)

    assert "Being prepared meanwhile" in output
    assert status == 503 and headers["Retry-After"] == "30"
    refused = json.loads(body)["error"]
    assert refused["code"] == "unavailable"
    assert "not ready yet (waiting for another process that is preparing it)" in refused["message"]
    assert "The local model is ready: smollm2-135m-instruct" in output
    chunks = [e["content"] for e in events if e["type"] == "chunk"]
    assert "".join(chunks).strip()
    assert events[-1]["type"] == "end" and events[-1]["status"] == "complete"


def _chat_once_ready(port: int, token: str, within: float) -> list[dict[str, str]]:
    """Sends as a client told Retry-After would, sooner: until the model is there."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        events = _chat_over_the_api(port, token)
        if events:
            return events
        time.sleep(0.5)
    raise AssertionError("the local model did not become ready")
