"""Files read by the server (roots from a real mcp.Client or not, escapes refused) and replies
larger than a host accepts (cut under the budget, the whole reply by resources/read and file)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.types import ListRootsResult, ResourceLink, Root

from aitoearn_mcp.views._budget import weight
from aitoearn_mcp.views._hosts import DEFAULT_PROFILE

from . import sse
from .conftest import KEY, HttpServer, http_client, make_server
from .fake_relay import FakeRelay, Reply
from .test_progress_cancel import SCRIPT

pytestmark = pytest.mark.anyio

MESSAGES = "/api/ai/v1/messages"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
PDF = b"%PDF-1.4\n%fake\n"


def ask(**extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-5", "messages": [{"role": "user", "content": "What is in these?"}], **extra}


def offering_roots(*roots: Path) -> Any:
    async def list_roots(context: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=root.as_uri(), name=root.name) for root in roots])  # type: ignore[arg-type]

    return list_roots


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    inside = tmp_path / "project"
    inside.mkdir()
    (inside / "notes.md").write_text("# 笔记\nline two\n", encoding="utf-8")
    (inside / "logo.png").write_bytes(PNG)
    (inside / "paper.pdf").write_bytes(PDF)
    (inside / "blob.bin").write_bytes(b"\x00\x01\x02\xff" * 10)
    outside = tmp_path / "secret.txt"
    outside.write_text("the secret")
    (inside / "link.txt").symlink_to(outside)
    return inside


async def test_files_inside_the_clients_roots_become_blocks(relay: FakeRelay, tree: Path) -> None:
    async with Client(make_server(relay), list_roots_callback=offering_roots(tree), mode="legacy") as client:
        result = await client.call_tool("send_message", ask(files=["notes.md", str(tree / "logo.png"), "paper.pdf"]))
    assert not result.is_error, result.content
    body = relay.requests_to(MESSAGES)[0].json()
    assert "files" not in body
    blocks = body["messages"][0]["content"]
    assert blocks[0] == {"type": "text", "text": f"File: {tree / 'notes.md'}\n\n# 笔记\nline two\n"}
    assert blocks[1]["type"] == "image" and blocks[1]["source"]["media_type"] == "image/png"
    assert blocks[2]["type"] == "document" and blocks[2]["title"] == "paper.pdf"
    assert blocks[2]["source"]["media_type"] == "application/pdf"
    assert blocks[3] == {"type": "text", "text": "What is in these?"}  # the question after the files


@pytest.mark.parametrize(("path", "says"), [
    ("link.txt", "outside the allowed roots"),          # a symlink out of the root
    ("../secret.txt", "outside the allowed roots"),     # .. out of the root
    ("missing.txt", "does not exist"),
    ("blob.bin", "neither text (UTF-8) nor a PNG"),
])  # fmt: skip
async def test_escapes_and_unsupported_files_are_refused_before_anything_is_sent(
    relay: FakeRelay, tree: Path, path: str, says: str
) -> None:
    async with Client(make_server(relay), list_roots_callback=offering_roots(tree), mode="legacy") as client:
        result = await client.call_tool("send_message", ask(files=["notes.md", path]))
        after = await client.call_tool("send_message", ask())
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert says in text and "`files[1]`" in text and "Nothing was sent" in text
    assert "the secret" not in text
    assert len(relay.requests_to(MESSAGES)) == 1 and not after.is_error


async def test_without_client_roots_the_working_directory_and_configured_roots_apply(
    relay: FakeRelay, tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "shared"
    other.mkdir()
    (other / "spec.txt").write_text("spec")
    monkeypatch.chdir(tree)
    async with Client(make_server(relay, files_roots=(str(other),))) as client:  # no roots offered
        ok = await client.call_tool("send_message", ask(files=["notes.md", str(other / "spec.txt")]))
        refused = await client.call_tool("send_message", ask(files=[str(tmp_path / "secret.txt")]))
    assert not ok.is_error
    assert refused.is_error and "outside the allowed roots" in refused.content[0].text  # type: ignore[union-attr]
    assert len(relay.requests_to(MESSAGES)) == 1


async def test_a_file_over_the_budget_is_refused_naming_it(relay: FakeRelay, tree: Path) -> None:
    (tree / "big.txt").write_text("x" * 5000)
    async with Client(
        make_server(relay, files_max_bytes=4096), list_roots_callback=offering_roots(tree), mode="legacy"
    ) as client:
        result = await client.call_tool("send_message", ask(files=["notes.md", "big.txt"]))
    text = result.content[0].text  # type: ignore[union-attr]
    assert result.is_error and "over the 4,096-byte budget" in text and "files[1]" in text
    assert "AITOEARN_FILES_MAX_BYTES" in text and relay.requests_to(MESSAGES) == []


async def test_files_are_refused_over_http(relay: FakeRelay, http_server: HttpServer) -> None:
    async with http_client(http_server.url) as client:
        result = await client.call_tool("send_message", ask(files=["README.md"]))
    assert result.is_error and "not available over HTTP" in result.content[0].text  # type: ignore[union-attr]
    assert "put the file's content in `messages`" in result.content[0].text  # type: ignore[union-attr]
    assert relay.requests_to(MESSAGES) == []


# --- replies larger than the host accepts ------------------------------------------------------------

HUGE = "".join(f"Paragraph {i}: 长篇报告的一部分，with some ASCII too.\n" for i in range(6000))  # ~275,000 characters


def weighted_json(value: Any) -> int:
    return weight(json.dumps(value, ensure_ascii=False))


async def test_a_huge_reply_is_cut_under_the_budget_and_read_back_whole(relay: FakeRelay) -> None:
    relay.enqueue(
        MESSAGES, Reply.sse(sse.text_reply([HUGE[i : i + 1000] for i in range(0, len(HUGE), 1000)]), chunk=65536)
    )
    budget = DEFAULT_PROFILE.max_result_chars  # no clientInfo: the strictest hosts' budget
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", ask())
        assert not result.is_error and len(HUGE) > 250_000
        texts = [c.text for c in result.content if c.type == "text"]
        [link] = [c for c in result.content if isinstance(c, ResourceLink)]
        structured = result.structured_content
        assert structured is not None
        assert sum(weight(t) for t in texts) <= budget  # the text the model reads fits
        assert weighted_json(structured) <= budget  # and so does the structured content
        assert HUGE.startswith(texts[0]) and len(texts[0]) > 5_000  # its beginning, exactly
        truncated = structured["truncated"]
        assert truncated["full_chars"] == len(HUGE) and truncated["uri"] == str(link.uri)
        assert f"{len(HUGE):,} characters" in texts[-1] and str(link.uri) in texts[-1]  # said in both parts
        assert any(str(link.uri) in note for note in structured["notes"])
        anthropic_blocks = structured["content"]
        assert HUGE.startswith(anthropic_blocks[0]["text"])
        full = await client.read_resource(str(link.uri))
        message = await client.read_resource(str(link.uri) + "/message")
        cid = structured["conversation_id"]
        await client.call_tool("send_message", {**ask(), "conversation_id": cid,
                                                "messages": [{"role": "user", "content": "Shorter?"}]})  # fmt: skip
    assert full.contents[0].text == HUGE  # type: ignore[union-attr]
    assert json.loads(message.contents[0].text)["content"][0]["text"] == HUGE  # type: ignore[union-attr]
    # the conversation keeps the reply whole
    assert relay.requests_to(MESSAGES)[1].json()["messages"][1]["content"][0]["text"] == HUGE
    Path(truncated["path"]).unlink()  # not over HTTP: the full reply is a file too


async def test_over_stdio_the_full_reply_is_also_a_file(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, Reply.sse(sse.text_reply([HUGE])))
    params = StdioServerParameters(command=SCRIPT, env={"AITOEARN_API_KEY": KEY, "AITOEARN_BASE_URL": relay.url,
                                                        "PATH": os.environ["PATH"]})  # fmt: skip
    async with Client(params) as client:
        result = await client.call_tool("send_message", ask())
        assert result.structured_content is not None
        path = Path(result.structured_content["truncated"]["path"])
        assert path.read_text(encoding="utf-8") == HUGE
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        assert str(path) in [c.text for c in result.content if c.type == "text"][-1]
    assert not path.exists()  # removed at the server's clean exit


async def test_a_reply_under_the_budget_is_not_touched(relay: FakeRelay) -> None:
    async with Client(make_server(relay, max_result_chars=2000)) as client:
        result = await client.call_tool("send_message", ask())
    assert result.content[0].text == "Hello, world."  # type: ignore[union-attr]
    assert result.structured_content is not None and "truncated" not in result.structured_content


async def test_another_keys_reply_cannot_be_read(relay: FakeRelay, http_server: HttpServer) -> None:
    relay.enqueue(MESSAGES, Reply.sse(sse.text_reply([HUGE])))
    async with http_client(http_server.url, {"X-Api-Key": "sk-alice-0123456789"}) as alice:
        result = await alice.call_tool("send_message", ask())
        uri = result.structured_content["truncated"]["uri"]  # type: ignore[index]
        assert (await alice.read_resource(uri)).contents[0].text == HUGE  # type: ignore[union-attr]
    async with http_client(http_server.url, {"X-Api-Key": "sk-mallory-0123456789"}) as mallory:
        with pytest.raises(Exception, match="unknown or has expired"):
            await mallory.read_resource(uri)


async def test_a_huge_reply_that_breaks_off_is_cut_too_and_kept_whole_by_reference(relay: FakeRelay) -> None:
    events = [sse.message_start(), *sse.text_block(0, [HUGE[i : i + 1000] for i in range(0, len(HUGE), 1000)])[:-1]]
    relay.enqueue(MESSAGES, Reply.sse(events, chunk=65536, end="drop"))
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", ask())
        assert result.is_error
        texts = [c.text for c in result.content if c.type == "text"]
        [link] = [c for c in result.content if isinstance(c, ResourceLink)]
        budget = DEFAULT_PROFILE.max_result_chars
        assert sum(weight(t) for t in texts) <= budget and weighted_json(result.structured_content) <= budget
        assert "incomplete" in texts[0] and f"{len(HUGE):,} characters of text arrived" in texts[0]
        assert HUGE.startswith(texts[1]) and len(texts[1]) > 5_000
        full = await client.read_resource(str(link.uri))
    assert full.contents[0].text == HUGE  # type: ignore[union-attr]  # nothing that arrived is lost
    Path(result.structured_content["truncated"]["path"]).unlink()  # type: ignore[index]
