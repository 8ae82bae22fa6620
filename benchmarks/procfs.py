"""What the kernel says about a process: resident memory and CPU time."""

from __future__ import annotations

import os
from pathlib import Path


def rss_kib(pid: int, field: str = "VmHWM") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def reset_peak_rss(pid: int) -> None:
    """Start ``pid``'s VmHWM again from its current RSS (Linux 4.0+), so a peak is one call's."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def cpu_seconds(pid: int) -> float:
    """CPU time of a process so far, all its threads, in nanoseconds' precision (schedstat; the
    clock-tick counts of /proc/PID/stat are 10 ms coarse)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError):
            continue  # a thread that ended meanwhile
    return total / 1e9


def child_pid(pattern: str) -> int:
    """The pid of this process's child whose command line contains ``pattern``."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == me and pattern in cmdline:
            return int(entry.name)
    raise RuntimeError(f"no child running {pattern}")
