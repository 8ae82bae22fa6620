"""``aitoearn-mcp check`` as a real subprocess against the fake relay."""

from __future__ import annotations

import os
import subprocess

from .conftest import KEY
from .fake_relay import FakeRelay, Reply
from .test_progress_cancel import SCRIPT

MESSAGES = "/api/ai/v1/messages"


def check(relay_url: str, *args: str, key: str | None = KEY) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "AITOEARN_BASE_URL": relay_url}
    if key:
        env["AITOEARN_API_KEY"] = key
    return subprocess.run([SCRIPT, "check", *args], env=env, capture_output=True, text=True, timeout=60)


def test_check_passes_and_masks_the_key(relay: FakeRelay) -> None:
    done = check(relay.url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Base URL:  {relay.url}" in done.stdout
    assert f"set ({len(KEY)} characters, ending …{KEY[-4:]}, from AITOEARN_API_KEY)" in done.stdout
    assert "Catalogue: reachable, 5 chat models (channels: anthropic, deepseek, gemini, openai)" in done.stdout
    assert "skipped (add --send" in done.stdout
    assert KEY not in done.stdout + done.stderr
    assert relay.requests_to(MESSAGES) == []


def test_check_shows_a_short_keys_length_and_never_much_of_a_key() -> None:
    from aitoearn_mcp.cli._check import mask

    assert mask("sk-shortkey") == "11 characters"  # under 12: no character of it
    assert mask("sk-abcd12345") == "12 characters, ending …2345"
    assert mask("x" * 200 + "wxyz") == "204 characters, ending …wxyz"


def test_check_send_makes_one_minimal_call(relay: FakeRelay) -> None:
    done = check(relay.url, "--send")
    assert done.returncode == 0, done.stdout
    assert "Send:      claude-sonnet-5 answered on the messages route" in done.stdout
    assert "spent a few credits" in done.stdout
    [request] = relay.requests_to(MESSAGES)
    body = request.json()
    assert body["max_tokens"] == 1 and body["model"] == "claude-sonnet-5" and body["stream"] is True
    assert request.headers["x-api-key"] == KEY


def test_check_fails_without_a_key(relay: FakeRelay) -> None:
    done = check(relay.url, key=None)
    assert done.returncode == 1
    assert "API key:   FAIL not set" in done.stdout and "AITOEARN_API_KEY" in done.stdout


def test_check_send_reports_a_rejected_key_like_the_tools_do(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, Reply.json(200, {"data": {}, "code": 19000, "message": "API Key 无效"}))
    done = check(relay.url, "--send", "--model", "claude-opus-4-8")
    assert done.returncode == 1
    assert "Send:      FAIL The relay rejected the API key" in done.stdout
    assert "AITOEARN_BASE_URL" in done.stdout and "code 19000" in done.stdout
    assert relay.requests_to(MESSAGES)[0].json()["model"] == "claude-opus-4-8"


def test_check_fails_when_the_relay_is_unreachable() -> None:
    done = check("http://127.0.0.1:9", "--max-retries", "0")
    assert done.returncode == 1
    assert "Catalogue: FAIL Could not connect to 127.0.0.1:9" in done.stdout


def test_check_send_reaches_an_openai_channel_model_on_its_route(relay: FakeRelay) -> None:
    done = check(relay.url, "--send", "--model", "deepseek-v4-pro")
    assert done.returncode == 0, done.stdout
    assert "Send:      deepseek-v4-pro answered on the chat-completions route" in done.stdout
    assert relay.requests_to(MESSAGES) == []
    [request] = relay.requests_to("/api/ai/chat/completions")
    assert request.headers["authorization"] == f"Bearer {KEY}" and "x-api-key" not in request.headers
    assert request.json()["max_tokens"] == 1
