"""Run a stdio MCP server between a host and the server, recording what the host does.

``python stdio_wrapper.py LOG -- COMMAND ARGS...``. Two processes, so that the server's exit
status is logged even when the host kills the process it started with SIGKILL:

- the front (the host's child) fills a pipe to the server's stdin from its own stdin, logging
  each JSON-RPC message the host sends and the end of stdin, and passes on the signals it gets;
- the monitor (forked from the front, in its own session, so the host's signals to its process
  group reach the server once, through the front) starts the server with the host's stdout,
  waits for it, and logs its exit status. It also logs the moment the front dies without
  logging a signal: the host SIGKILLed it, as it would have SIGKILLed a server it started.

LOG gets one JSON object a line: ``{"t": seconds since the front started, "wall": time.time(),
"event": "spawned" | "message" | "signal" | "stdin-eof" | "front-killed" | "exit", ...}``.
Standard library only: the wrapper must start fast and import nothing of the server's.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Any

_PARAMS_CAP = 4000  # a message's params are logged up to this many characters of JSON
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Log:
    def __init__(self, path: str, start: float) -> None:
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (open for the process's life)
        self._lock = threading.Lock()
        self._start = start

    def write(self, event: str, **fields: Any) -> None:
        now = time.time()
        record = {"t": round(now - self._start, 4), "wall": now, "event": event, **fields}
        with self._lock:
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
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
    with contextlib.suppress(BrokenPipeError, ValueError):
        for line in source:
            if line.strip():
                log.write("message", **_message_fields(line))
            sink.write(line)
            sink.flush()
    log.write("stdin-eof")
    with contextlib.suppress(BrokenPipeError):
        sink.close()


def _forward_signals(log: _Log | None, pid: int) -> None:
    def forward(number: int, _frame: object) -> None:
        if log is not None:
            log.write("signal", signal=signal.Signals(number).name)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, number)

    for number in _SIGNALS:
        signal.signal(number, forward)


def front(log_path: str, command: list[str]) -> int:
    log = _Log(log_path, time.time())
    read_end, write_end = os.pipe()
    # Signals wait (blocked) until each process has its handlers: none is lost or fatal meanwhile.
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    monitor_pid = os.fork()  # cheaper than starting another interpreter: start-up time is measured
    if monitor_pid == 0:
        os.close(write_end)
        os.setsid()
        os.dup2(read_end, 0)
        os.close(read_end)
        os._exit(monitor(log, command))
    os.close(read_end)
    _forward_signals(log, monitor_pid)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
    sink = os.fdopen(write_end, "wb")
    threading.Thread(target=_pump, args=(sys.stdin.buffer, sink, log), daemon=True).start()
    status = os.waitstatus_to_exitcode(os.waitpid(monitor_pid, 0)[1])
    return status if status >= 0 else 128 - status


def monitor(log: _Log, command: list[str]) -> int:
    front_pid = os.getppid()
    started: list[subprocess.Popen[bytes]] = []
    pending: list[int] = []

    def forward(number: int, _frame: object) -> None:  # the front logs the signals it passes on
        if started:
            with contextlib.suppress(ProcessLookupError):
                started[0].send_signal(number)
        else:
            pending.append(number)

    for number in _SIGNALS:
        signal.signal(number, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)  # before the server starts: it inherits the mask
    server = subprocess.Popen(command)  # stdout: the host's pipe; stdin: the front's pipe
    started.append(server)
    log.write("spawned", pid=server.pid, command=command)
    for number in pending:
        server.send_signal(number)

    def watch_front() -> None:
        while server.poll() is None:
            if os.getppid() != front_pid:
                log.write("front-killed")
                return
            time.sleep(0.002)

    threading.Thread(target=watch_front, daemon=True).start()
    status = server.wait()
    log.write("exit", pid=server.pid, status=status)
    return status if status >= 0 else 128 - status


def main(argv: list[str]) -> int:
    log_path, separator, *command = argv
    assert separator == "--" and command, "usage: stdio_wrapper.py LOG -- COMMAND ARGS..."
    return front(log_path, command)


if __name__ == "__main__":
    # os._exit: the stdin pump may still be blocked in a read, which a normal interpreter
    # shutdown would wait on (and abort over); everything logged is already flushed.
    os._exit(main(sys.argv[1:]))
