"""Streamable HTTP with real server processes on loopback ports and a real mcp.Client."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import anyio
import httpx2
import pytest

from ..conftest import HELLO, KEY, HttpServer, free_port, http_client
from ..fake_relay import FakeRelay

pytestmark = pytest.mark.anyio

MESSAGES = "/api/ai/v1/messages"
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}  # fmt: skip
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def echo(text: str) -> dict[str, Any]:
    return {**HELLO, "messages": [{"role": "user", "content": f"echo:{text}"}]}


async def test_healthz_answers_without_touching_the_relay(relay: FakeRelay, http_server: HttpServer) -> None:
    response = httpx2.get(http_server.base + "/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"
    assert relay.requests == []


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_loopback_uses_the_callers_key_or_the_servers(
    relay: FakeRelay, http_server: HttpServer, mode: str
) -> None:
    async with http_client(http_server.url, {"X-Api-Key": "caller-one-key"}, mode=mode) as client:
        own = await client.call_tool("send_message", echo("one"))
    async with http_client(http_server.url, {"Authorization": "Bearer caller-two-key"}, mode=mode) as client:
        bearer = await client.call_tool("send_message", echo("two"))
    async with http_client(http_server.url, mode=mode) as client:
        keyless = await client.call_tool("send_message", echo("three"))
    assert [own.content[0].text, bearer.content[0].text, keyless.content[0].text] == [
        "echo:one",
        "echo:two",
        "echo:three",
    ]
    assert [r.headers["x-api-key"] for r in relay.requests_to(MESSAGES)] == ["caller-one-key", "caller-two-key", KEY]
    assert "caller-one-key" not in http_server.log() and KEY not in http_server.log()


async def test_mcp_param_headers_are_checked_only_for_tools_that_declare_one(
    relay: FakeRelay, http_server: HttpServer
) -> None:
    """The server tells the SDK a tool's schema for its Mcp-Param-* check only when the schema
    declares such a header (x-mcp-header); none does, so a stray header is no reason to refuse."""
    from mcp.shared.inbound import x_mcp_header_map

    from aitoearn_mcp._config import Config
    from aitoearn_mcp.server._server import create_server

    server = create_server(Config(api_key=None))
    lookup = server._lowlevel_server.get_tool_input_schema  # pyright: ignore[reportPrivateUsage]
    assert lookup is not None
    listed = await server.list_tools()
    assert [lookup(t.name) for t in listed] == [t.input_schema if x_mcp_header_map(t.input_schema) else None
                                                for t in listed]  # fmt: skip
    async with http_client(http_server.url, {"Mcp-Param-Model": "another-model"}) as client:
        result = await client.call_tool("send_message", echo("served"))
    assert not result.is_error and result.content[0].text == "echo:served"


async def test_off_loopback_a_keyless_request_gets_401_and_the_server_key_is_never_used(relay: FakeRelay) -> None:
    server = HttpServer(relay, "--host", "0.0.0.0", "--allowed-host", "127.0.0.1")
    try:
        response = httpx2.post(server.url, json=INIT, headers=MCP_HEADERS)
        assert response.status_code == 401
        assert "X-Api-Key" in response.json()["error"]["message"]
        async with http_client(server.url, {"X-Api-Key": "caller-key-123"}) as client:
            result = await client.call_tool("send_message", HELLO)
        assert result.content[0].text == "Hello, world."
        assert relay.requests_to(MESSAGES)[0].headers["x-api-key"] == "caller-key-123"
    finally:
        server.stop()


async def test_several_workers_serve(relay: FakeRelay) -> None:
    server = HttpServer(relay, "--workers", "2")
    try:
        for number in range(4):
            async with http_client(server.url, {"X-Api-Key": "k-123"}) as client:
                result = await client.call_tool("send_message", echo(str(number)))
            assert result.content[0].text == f"echo:{number}"
        assert len(set(re.findall(r"Started server process \[(\d+)\]", server.log()))) == 2
    finally:
        server.stop()


def test_binding_all_interfaces_without_allowed_hosts_is_refused(relay: FakeRelay) -> None:
    with pytest.raises(RuntimeError, match="needs --allowed-host"):
        HttpServer(relay, "--host", "0.0.0.0")


async def test_concurrent_callers_never_see_each_others_key_or_results(
    relay: FakeRelay, http_server: HttpServer
) -> None:
    results: dict[str, list[str]] = {"alpha": [], "beta": []}

    async def caller(name: str) -> None:
        async with http_client(http_server.url, {"X-Api-Key": f"key-of-{name}"}) as client:
            for number in range(5):
                result = await client.call_tool("send_message", echo(f"{name}-{number}"))
                results[name].append(result.content[0].text)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(caller, "alpha")
        tasks.start_soon(caller, "beta")
    assert results == {name: [f"echo:{name}-{n}" for n in range(5)] for name in ("alpha", "beta")}
    for request in relay.requests_to(MESSAGES):
        sent = request.json()["messages"][0]["content"]
        assert request.headers["x-api-key"] == f"key-of-{sent.split(':')[1].split('-')[0]}"


async def test_dns_rebinding_and_foreign_origins_are_refused(http_server: HttpServer) -> None:
    evil_host = httpx2.post(http_server.url, json=INIT, headers={**MCP_HEADERS, "host": "evil.example"})
    assert evil_host.status_code == 421
    evil_origin = httpx2.post(http_server.url, json=INIT, headers={**MCP_HEADERS, "origin": "https://evil.example"})
    assert evil_origin.status_code == 403
    fine = httpx2.post(
        http_server.url, json=INIT, headers={**MCP_HEADERS, "origin": f"http://localhost:{http_server.port}"}
    )
    assert fine.status_code == 200


async def test_request_body_limit(http_server: HttpServer) -> None:
    big = json.dumps({**INIT, "params": {**INIT["params"], "pad": "x" * (53 * 1024 * 1024)}})
    response = httpx2.post(http_server.url, content=big, headers=MCP_HEADERS, timeout=30)
    assert response.status_code == 413


class RoundRobin(httpx2.AsyncBaseTransport):
    """Sends each HTTP request to the next server in turn, as a load balancer would."""

    def __init__(self, ports: list[int]) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.ports = itertools.cycle(ports)
        self.sent: list[tuple[int, str]] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = next(self.ports)
        request.url = request.url.copy_with(port=port)
        request.headers["host"] = f"127.0.0.1:{port}"
        body = json.loads(request.content) if request.content else {}
        self.sent.append((port, body.get("method", "")))
        return await self.inner.handle_async_request(request)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_stateless_one_client_served_by_two_processes(relay: FakeRelay, mode: str) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    servers = [HttpServer(relay), HttpServer(relay)]
    try:
        balancer = RoundRobin([s.port for s in servers])
        http = httpx2.AsyncClient(transport=balancer, timeout=30)
        async with Client(
            streamable_http_client(f"http://127.0.0.1:{free_port()}/mcp", http_client=http), mode=mode
        ) as client:
            texts = [(await client.call_tool("send_message", echo(str(n)))).content[0].text for n in range(4)]
            models = await client.call_tool("list_models", {})
    finally:
        for server in servers:
            server.stop()
    assert texts == [f"echo:{n}" for n in range(4)]
    assert not models.is_error
    calls = {port for port, method in balancer.sent if method == "tools/call"}
    assert calls == {s.port for s in servers}  # both processes served this one client's calls


async def test_a_listen_stream_hears_only_its_own_callers_changes(relay: FakeRelay, http_server: HttpServer) -> None:
    """A shared deployment: one caller's call changes only that caller's resources/list, so only
    that caller's listen streams are told; another caller's stream hears nothing (else it would
    learn when someone else works, and re-list for nothing)."""
    heard: dict[str, list[str]] = {"alice": [], "bob": []}
    async with (
        http_client(http_server.url, {"X-Api-Key": "alice-key-0123"}) as alice,
        http_client(http_server.url, {"X-Api-Key": "bob-key-456789"}) as bob,
        alice.listen(resources_list_changed=True) as alice_hears,
        bob.listen(resources_list_changed=True) as bob_hears,
    ):

        async def watch(name: str, changes: Any) -> None:
            async for event in changes:
                heard[name].append(type(event).__name__)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(watch, "alice", alice_hears)
            tasks.start_soon(watch, "bob", bob_hears)
            await bob.call_tool("send_message", echo("bob's"))
            await anyio.sleep(1)  # the notice's delay (10 ms) a hundred times over
            assert heard == {"alice": [], "bob": ["ResourcesListChanged"]}
            await alice.call_tool("send_message", echo("alice's"))
            with anyio.fail_after(5):
                while not heard["alice"]:
                    await anyio.sleep(0.01)
            await anyio.sleep(0.5)
            tasks.cancel_scope.cancel()
    assert heard == {"alice": ["ResourcesListChanged"], "bob": ["ResourcesListChanged"]}
