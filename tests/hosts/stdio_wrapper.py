"""Run a stdio MCP server between a host and the server, recording what the host does.

``python stdio_wrapper.py LOG -- COMMAND ARGS...`` starts COMMAND with this process's stdout
(the server answers the host directly) and a pipe for its stdin, which this process fills from
its own stdin, logging each JSON-RPC message the host sends. Signals this process gets are
passed on to the server (which runs in its own session, so a signal to the host's process group
reaches it once), and the server's exit status is logged. LOG gets one JSON object a line:
``{"t": seconds since start, "event": "message" | "signal" | "stdin-eof" | "exit", ...}``.
Standard library only: the wrapper must start fast and import nothing of the server's.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Any

_START = time.monotonic()
_PARAMS_CAP = 4000  # a message's params are logged up to this many characters of JSON


class _Log:
    def __init__(self, path: str) -> None:
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (open for the process's life)
        self._lock = threading.Lock()

    def write(self, event: str, **fields: Any) -> None:
        line = json.dumps(
            {"t": round(time.monotonic() - _START, 4), "wall": time.time(), "event": event, **fields},
            ensure_ascii=False,
        )
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()


def _message_fields(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except ValueError:
        return {"unparsed": line[:200].decode(errors="replace")}
    if not isinstance(message, dict):
        return {"batch": True}
    params = message.get("params")
    text = json.dumps(params, ensure_ascii=False) if params is not None else ""
    fields: dict[str, Any] = {"method": message.get("method"), "id": message.get("id")}
    fields["params"] = params if len(text) <= _PARAMS_CAP else {"truncated_json": text[:_PARAMS_CAP]}
    return fields


def _pump(source: IO[bytes], sink: IO[bytes], log: _Log) -> None:
    try:
        for line in source:
            if line.strip():
                log.write("message", **_message_fields(line))
            sink.write(line)
            sink.flush()
    except (BrokenPipeError, ValueError):
        pass
    log.write("stdin-eof")
    with contextlib.suppress(BrokenPipeError):
        sink.close()


def main(argv: list[str]) -> int:
    log_path, separator, *command = argv
    assert separator == "--" and command, "usage: stdio_wrapper.py LOG -- COMMAND ARGS..."
    log = _Log(log_path)
    server = subprocess.Popen(command, stdin=subprocess.PIPE, start_new_session=True)
    log.write("spawned", pid=server.pid, command=command)

    def forward(number: int, _frame: object) -> None:
        log.write("signal", signal=signal.Signals(number).name)
        if server.poll() is None:
            server.send_signal(number)

    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, forward)
    assert server.stdin is not None
    threading.Thread(target=_pump, args=(sys.stdin.buffer, server.stdin, log), daemon=True).start()
    status = server.wait()
    log.write("exit", pid=server.pid, status=status)
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
