"""MCP Tasks (``io.modelcontextprotocol/tasks``, 2026-07-28) where the client declares them.

The requester is the Python SDK's own client with a task claim (``Client(extensions=[...])``:
the SDK stamps the extension into each request's capabilities and hands a ``resultType: "task"``
result to the claim, which polls ``tasks/get``), the MCP Inspector CLI from npm, and raw
JSON-RPC for what no client sends (a legacy handshake declaring the extension)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from typing import Any, Literal

import anyio
import pytest
from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent
from mcp_types import Request, RequestParams, Result
from pydantic import ConfigDict, Field

from aitoearn_mcp.delegation._record import ReplyRecord
from aitoearn_mcp.server._tasks import POLL_MS, TASKS, task_json, task_status

from .. import sse
from ..conftest import HELLO, KEY, HttpServer, RedisServer, free_port, make_server
from ..fake_relay import FakeRelay, slow_reply
from ..node import MODULES, ensure_node
from ..test_progress_cancel import SCRIPT, stdio

pytestmark = pytest.mark.anyio

MESSAGES = "/api/ai/v1/messages"
MODERN = "2026-07-28"
TTL_MS = 30 * 24 * 3600 * 1000  # the default store's (a file's) conversation TTL


# --- a task-aware requester built on the SDK's client extension API ---------------------------


class CreateTask(Result):
    result_type: Literal["task"] = Field(alias="resultType")
    task_id: str
    status: str
    status_message: str | None = None
    created_at: str
    last_updated_at: str
    ttl_ms: int | None
    poll_interval_ms: int | None = None


class TaskParams(RequestParams):
    task_id: str
    input_responses: dict[str, Any] | None = None


class GetTask(Request[TaskParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    name_param = "taskId"


class CancelTask(Request[TaskParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    name_param = "taskId"


class UpdateTask(Request[TaskParams, Literal["tasks/update"]]):
    method: Literal["tasks/update"] = "tasks/update"
    name_param = "taskId"


TaskRequest = type[GetTask] | type[CancelTask] | type[UpdateTask]


class Answer(Result):
    """Any result, kept as sent."""

    model_config = ConfigDict(extra="allow")


async def send(session: Any, kind: TaskRequest, task_id: str, **extra: Any) -> dict[str, Any]:
    answer = await session.send_request(kind(params=TaskParams(task_id=task_id, **extra)), Answer)
    return answer.model_dump(by_alias=True, mode="json", exclude_none=True)


async def tasks_request(client: Client, kind: TaskRequest, task_id: str, **extra: Any) -> dict[str, Any]:
    return await send(client.session, kind, task_id, **extra)


class TasksClient(ClientExtension):
    """Declares the extension and settles a task by polling ``tasks/get`` (faster than the
    server's pollIntervalMs, to keep the tests short); records what it saw."""

    identifier = TASKS

    def __init__(self) -> None:
        self.created: list[CreateTask] = []
        self.polls: list[dict[str, Any]] = []

    def claims(self) -> list[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=CreateTask, resolve=self._settle)]

    async def _settle(self, created: CreateTask, ctx: ClaimContext) -> CallToolResult:
        self.created.append(created)
        while True:
            task = await send(ctx.session, GetTask, created.task_id)
            self.polls.append(task)
            if task["status"] == "completed":
                return CallToolResult.model_validate(task["result"])
            assert task["status"] == "working", task
            await anyio.sleep(0.1)


def declared(target: Any, tasks: TasksClient, **kw: Any) -> Client:
    return Client(target, extensions=[tasks], **kw)


def text(result: CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


def without_ids(structured: dict[str, Any] | None) -> dict[str, Any]:
    """The result less what differs between two calls: their reply and conversation ids."""
    kept = {k: v for k, v in (structured or {}).items() if k not in ("reply_id", "conversation_id")}
    kept["notes"] = [re.sub(r"\bc_[A-Za-z0-9_-]+", "c_…", note) for note in kept.get("notes", [])]
    return kept


# --- pure parts ----------------------------------------------------------------------------


def _record(status: Any, **kw: Any) -> ReplyRecord:
    return ReplyRecord(status, "gpt-5.5", 1_700_000_000.0, 1_700_000_012.5, **kw)


def test_task_status_follows_the_reply_and_a_failed_reply_is_a_completed_tool_error() -> None:
    assert task_status(_record("running")) == "working"
    assert task_status(_record("complete")) == "completed"
    assert task_status(_record("failed")) == "completed"  # the spec: a tool result with isError is completed
    assert task_status(_record("cancelled")) == "cancelled"


def test_task_json_carries_the_result_only_when_completed() -> None:
    running = task_json("r_1", _record("running", chars=1234), ttl_ms=5000, now=1_700_000_030.0)
    assert running == {
        "taskId": "r_1", "status": "working",
        "statusMessage": "gpt-5.5 is working on reply r_1: 1,234 characters so far after 30 s.",
        "createdAt": "2023-11-14T22:13:20.000Z", "lastUpdatedAt": "2023-11-14T22:13:32.500Z",
        "ttlMs": 5000, "pollIntervalMs": POLL_MS,
    }  # fmt: skip
    silent = task_json("r_1", _record("running"), ttl_ms=5000, now=1_700_000_075.0)
    assert "thinking, no text yet after 75 s" in silent["statusMessage"]
    failed = CallToolResult(content=[TextContent(type="text", text="The relay refused the key.")], is_error=True)
    done = task_json("r_1", _record("failed", error="The relay refused the key."), ttl_ms=5000, now=0, result=failed)
    assert done["status"] == "completed" and done["statusMessage"] == "The relay refused the key."
    assert done["result"] == {"content": [{"type": "text", "text": "The relay refused the key."}], "isError": True,
                              "resultType": "complete"}  # fmt: skip
    cancelled = task_json("r_1", _record("cancelled", text="abc"), ttl_ms=5000, now=0)
    assert cancelled["status"] == "cancelled" and "result" not in cancelled
    assert "after 3 characters" in cancelled["statusMessage"] and "'r_1'" in cancelled["statusMessage"]
    with pytest.raises(AssertionError):
        task_json("r_1", _record("complete"), ttl_ms=5000, now=0)


# --- through a real client -----------------------------------------------------------------

TARGETS = ["in-process", "stdio", "http"]


def target_for(name: str, relay: FakeRelay, request: pytest.FixtureRequest) -> Any:
    if name == "in-process":
        return make_server(relay)
    if name == "stdio":
        return stdio(relay)
    return request.getfixturevalue("http_server").url


def over_http(url: str, key: str, extensions: list[ClientExtension] | None = None) -> Client:
    transport = streamable_http_client(url, http_client=create_mcp_http_client(headers={"X-Api-Key": key}))
    return Client(transport, extensions=extensions)


def client(name: str, target: Any, extensions: list[ClientExtension] | None = None) -> Client:
    return over_http(target, KEY, extensions) if name == "http" else Client(target, extensions=extensions)


@pytest.mark.parametrize("target", TARGETS)
async def test_a_declared_client_gets_a_task_polls_it_and_reads_what_send_message_returns(
    relay: FakeRelay, target: str, request: pytest.FixtureRequest
) -> None:
    pieces = [f"任务{i} " for i in range(20)]
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply(pieces), delay=0.05))  # ~1 s: polled while working
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply(pieces), delay=0.05))
    where = target_for(target, relay, request)
    tasks = TasksClient()
    async with client(target, where, [tasks]) as declaring:
        assert declaring.protocol_version == MODERN
        assert declaring.server_capabilities.extensions == {TASKS: {}}  # what the Inspector looks for
        started = time.monotonic()
        result = await declaring.call_tool("send_message", HELLO)
        assert time.monotonic() - started < 10
        reply = await declaring.call_tool("get_reply", {"reply_id": tasks.created[0].task_id})
    async with client(target, where) as plain:  # the same request, no extension: the usual call
        usual = await plain.call_tool("send_message", HELLO)
    [created] = tasks.created
    assert created.status == "working" and created.task_id.startswith("r_")
    assert created.ttl_ms == TTL_MS and created.poll_interval_ms == POLL_MS
    assert any(p["status"] == "working" and "claude-sonnet-5 is working" in p["statusMessage"] for p in tasks.polls)
    assert tasks.polls[-1]["status"] == "completed" and tasks.polls[-1]["resultType"] == "complete"
    assert tasks.polls[-1]["createdAt"] == created.created_at
    # the task is the reply: same id, and get_reply reads exactly the task's result
    assert result.structured_content and result.structured_content["reply_id"] == created.task_id
    assert result.structured_content["status"] == "complete" and text(result).startswith("".join(pieces))
    assert reply.content == result.content and reply.structured_content == result.structured_content
    # and it is what send_message answers a client that did not declare the extension
    assert not usual.is_error and text(usual).startswith("".join(pieces))
    assert without_ids(usual.structured_content) == without_ids(result.structured_content)
    assert len(relay.requests_to(MESSAGES)) == 2  # nothing generated twice


async def test_an_undeclared_client_gets_the_usual_result_and_no_task_methods(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply([f"w{i} " for i in range(40)]), delay=0.05))
    async with Client(make_server(relay)) as plain:
        assert plain.protocol_version == MODERN
        started = time.monotonic()
        # a claimed result would raise UnexpectedClaimedResult here
        result = await plain.session.call_tool("send_message", {**HELLO, "wait_seconds": 0.5})
        assert time.monotonic() - started < 1.5  # its own wait_seconds, not a task
        assert isinstance(result, CallToolResult) and result.structured_content
        assert result.structured_content["status"] == "running"
        reply_id = result.structured_content["reply_id"]
        with pytest.raises(MCPError) as refused:
            await tasks_request(plain, GetTask, reply_id)
        assert refused.value.error.code == -32021
        assert refused.value.error.data == {"requiredCapabilities": {"extensions": {TASKS: {}}}}
        final = await plain.call_tool("get_reply", {"reply_id": reply_id})
        assert final.structured_content and final.structured_content["status"] == "complete"


async def test_several_models_from_a_declared_client_answer_as_send_message_does(relay: FakeRelay) -> None:
    tasks = TasksClient()
    async with declared(make_server(relay), tasks) as declaring:
        result = await declaring.call_tool(
            "send_message", {"messages": HELLO["messages"], "models": ["gpt-5.5", "claude-sonnet-5"]}
        )
    assert not tasks.created
    assert result.structured_content and len(result.structured_content["replies"]) == 2


async def test_a_reply_over_before_its_task_exists_is_answered_as_the_usual_result(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply can end while its task is being created (a fast model): the caller then gets the
    finished result at once, never an error."""
    from aitoearn_mcp.server._tasks import Tasks

    stored = Tasks._stored  # pyright: ignore[reportPrivateUsage]

    async def stored_after_the_end(state: Any, delegation: Any, key: Any) -> bool:
        found = await stored(state, delegation, key)
        await delegation.finished.wait()  # the reply ends while its task is being created
        return found

    monkeypatch.setattr(Tasks, "_stored", staticmethod(stored_after_the_end))
    tasks = TasksClient()
    async with declared(make_server(relay), tasks) as declaring:
        result = await declaring.call_tool("send_message", {**HELLO, "wait_seconds": 0})
    assert not result.is_error and text(result).startswith("Hello, world."), text(result)
    assert not tasks.created and len(relay.requests_to(MESSAGES)) == 1


async def test_a_refused_request_is_refused_at_once_not_as_a_task(relay: FakeRelay) -> None:
    tasks = TasksClient()
    async with declared(make_server(relay), tasks) as declaring:
        result = await declaring.call_tool("send_message", {"model": "gpt-5.5", "messages": []})
    assert result.is_error and "messages" in text(result) and not tasks.created
    assert not relay.requests_to(MESSAGES)


@pytest.mark.parametrize("target", TARGETS)
async def test_tasks_cancel_stops_the_relay_within_a_second(
    relay: FakeRelay, target: str, request: pytest.FixtureRequest
) -> None:
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply([f"慢{i} " for i in range(400)]), delay=0.05))  # 20 s
    async with client(target, target_for(target, relay, request), [TasksClient()]) as declaring:
        created = await declaring.session.call_tool("send_message", HELLO, allow_claimed=True)
        assert isinstance(created, CreateTask)
        while not relay.requests_to(MESSAGES):
            await anyio.sleep(0.05)
        await anyio.sleep(0.5)  # some text arrives
        asked = time.time()
        ack = await tasks_request(declaring, CancelTask, created.task_id)
        assert ack == {"resultType": "complete", "_meta": ack["_meta"]}
        with anyio.fail_after(5):  # the relay notices at its next write
            while not relay.hangups_wall:
                await anyio.sleep(0.02)
        assert relay.hangups_wall[0] - asked < 1.0  # the stream closed: billing stopped
        task = await tasks_request(declaring, GetTask, created.task_id)
        assert task["status"] == "cancelled" and "result" not in task
        assert "billing stopped" in task["statusMessage"] and created.task_id in task["statusMessage"]
        reply = await declaring.call_tool("get_reply", {"reply_id": created.task_id})
        assert reply.structured_content and reply.structured_content["status"] == "cancelled"
        assert text(reply).count("慢") >= 1
        again = await tasks_request(declaring, CancelTask, created.task_id)  # already over: still acknowledged
        assert again["resultType"] == "complete"
    assert len(relay.requests_to(MESSAGES)) == 1


async def test_a_task_is_its_owners_alone_and_readable_on_every_replica(
    relay: FakeRelay, redis_server: RedisServer
) -> None:
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply([f"w{i} " for i in range(30)]), delay=0.05))
    env = {"AITOEARN_CONVERSATIONS": redis_server.url}
    one, other = HttpServer(relay, env=env), HttpServer(relay, env=env)
    try:
        async with (
            client("http", one.url, [TasksClient()]) as owner,
            client("http", other.url, [TasksClient()]) as replica,
        ):
            stranger = over_http(other.url, "sk-aitoearn-SOMEONE-ELSE", [TasksClient()])
            created = await owner.session.call_tool("send_message", HELLO, allow_claimed=True)
            assert isinstance(created, CreateTask)
            # durably created: another replica resolves it at once
            seen = await tasks_request(replica, GetTask, created.task_id)
            assert seen["taskId"] == created.task_id and seen["status"] in ("working", "completed")
            async with stranger:
                for kind in (GetTask, CancelTask):
                    with pytest.raises(MCPError) as unknown:
                        await tasks_request(stranger, kind, created.task_id)
                    assert unknown.value.error.code == -32602 and "not found" in unknown.value.error.message
                with pytest.raises(MCPError) as unknown:
                    await tasks_request(stranger, UpdateTask, created.task_id, input_responses={})
                assert unknown.value.error.code == -32602
            ack = await tasks_request(owner, UpdateTask, created.task_id, input_responses={"x": {"action": "accept"}})
            assert ack["resultType"] == "complete"
            deadline = time.monotonic() + 30
            while (task := await tasks_request(replica, GetTask, created.task_id))["status"] == "working":
                assert time.monotonic() < deadline
                await anyio.sleep(0.2)
            assert task["status"] == "completed" and not task["result"]["isError"]
            assert task["result"]["structuredContent"]["reply_id"] == created.task_id
            assert task["result"]["content"][0]["text"] == "".join(f"w{i} " for i in range(30))
    finally:
        one.stop()
        other.stop()


async def test_an_unknown_task_id_is_invalid_params(relay: FakeRelay) -> None:
    async with declared(make_server(relay), TasksClient()) as declaring:
        for kind in (GetTask, CancelTask):
            with pytest.raises(MCPError) as unknown:
                await tasks_request(declaring, kind, "r_doesnotexist")
            assert unknown.value.error.code == -32602


# --- raw JSON-RPC: a handshake-era connection never gets a task ------------------------------


def test_a_legacy_connection_declaring_the_extension_still_gets_the_usual_result(relay: FakeRelay) -> None:
    """A 2025-11-25 wire cannot carry ``resultType: "task"``: even a client that names the
    extension in its handshake gets the usual result, and the task methods do not exist there."""
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply(["a ", "b"]), delay=0.01))
    env = {"AITOEARN_API_KEY": KEY, "AITOEARN_BASE_URL": relay.url, "PATH": os.environ["PATH"]}
    proc = subprocess.Popen([SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=env, text=True)  # fmt: skip
    assert proc.stdin and proc.stdout

    def ask(message: dict[str, Any]) -> dict[str, Any]:
        assert proc.stdin and proc.stdout
        proc.stdin.write(json.dumps({"jsonrpc": "2.0", **message}) + "\n")
        proc.stdin.flush()
        if "id" not in message:
            return {}
        while True:
            answer = json.loads(proc.stdout.readline())
            if answer.get("id") == message["id"]:
                return answer

    try:
        hello = ask({"id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "clientInfo": {"name": "raw", "version": "1"},
            "capabilities": {"extensions": {TASKS: {}}}}})  # fmt: skip
        assert hello["result"]["protocolVersion"] == "2025-11-25"
        ask({"method": "notifications/initialized"})
        called = ask({"id": 2, "method": "tools/call", "params": {"name": "send_message", "arguments": HELLO}})
        assert called["result"]["structuredContent"]["status"] == "complete"
        assert "taskId" not in called["result"] and called["result"].get("resultType") != "task"
        got = ask(
            {"id": 3, "method": "tasks/get", "params": {"taskId": called["result"]["structuredContent"]["reply_id"]}}
        )
        assert got["error"]["code"] == -32601
    finally:
        proc.stdin.close()
        proc.wait(10)


# --- the MCP Inspector CLI (npm), a real host that declares the extension ---------------------

INSPECTOR = MODULES / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build" / "index.js"


@pytest.mark.parametrize(("era", "transport"), [("modern", "stdio"), ("modern", "http"), ("legacy", "stdio")])
def test_the_inspector_cli_polls_a_task_past_the_servers_wait(relay: FakeRelay, era: str, transport: str) -> None:
    """With AITOEARN_WAIT_SECONDS=1 a 3-second reply comes back as "running" to a host without
    tasks (the Inspector's legacy era); the Inspector on 2026-07-28 declares the extension, gets a
    task, polls it and shows the whole reply."""
    node = ensure_node()
    pieces = [f"检查{i} " for i in range(30)]
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply(pieces), delay=0.1))
    env = {"AITOEARN_API_KEY": KEY, "AITOEARN_BASE_URL": relay.url, "AITOEARN_WAIT_SECONDS": "1"}
    if transport == "http":
        server = HttpServer(relay, env={"AITOEARN_WAIT_SECONDS": "1"})
        target = ["--transport", "http", "--server-url", server.url, "--header", f"X-Api-Key: {KEY}"]
    else:
        server = None
        target = [*(a for name, value in env.items() for a in ("-e", f"{name}={value}")), "--", SCRIPT]
    call = ["--method", "tools/call", "--tool-name", "send_message", "--tool-args-json", json.dumps(HELLO)]
    try:
        done = subprocess.run([str(node), str(INSPECTOR), "--cli", "--protocol-era", era, *call, *target],
                              capture_output=True, text=True, timeout=120, env={"PATH": os.environ["PATH"]})  # fmt: skip
    finally:
        if server:
            server.stop()
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    shown = json.loads(done.stdout)
    if era == "modern":
        assert shown["structuredContent"]["status"] == "complete"
        assert shown["content"][0]["text"] == "".join(pieces)
    else:
        assert shown["structuredContent"]["status"] == "running"
    assert KEY not in done.stdout + done.stderr


async def test_a_task_the_store_cannot_keep_is_answered_as_the_usual_call(relay: FakeRelay) -> None:
    """Durably created or not at all: with the shared store down no other replica could resolve
    the task, so the call answers as send_message does (the reply still reaches the caller)."""
    tasks = TasksClient()
    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    async with declared(make_server(relay, conversations=down), tasks) as declaring:
        result = await declaring.call_tool("send_message", HELLO)
    assert not tasks.created
    assert result.structured_content and result.structured_content["status"] == "complete" and not result.is_error
