"""CPU time and memory of a process tree, read from /proc.

Why /proc and a whole tree: a gateway may run as a supervisor plus forked workers (uvicorn, gunicorn,
granian, anygate --workers N), and its cost is the sum over all of them. Summing utime+stime+cutime+cstime
over the tree keeps the figure right even when a worker exits during a run, because the kernel then
adds its time to its parent's cutime/cstime.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _read_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces), or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rindex(")") + 2 :].split()


def tree_pids(root: int) -> list[int]:
    """The root and all its descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _read_stat(int(entry))
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    out: list[int] = []
    todo = [root]
    while todo and len(out) < 10_000:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(root: int) -> float:
    """utime+stime+cutime+cstime summed over the tree, in seconds."""
    ticks = 0
    for pid in tree_pids(root):
        fields = _read_stat(pid)
        if fields is None:
            continue
        # After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
        ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU time all cores spent in user and system mode (and stolen) since boot, from /proc/stat.

    Why: the benchmark shares the machine with whatever else runs; busy time not spent by the gateway,
    the upstream or wrk during a run is background load that makes the figures less trustworthy.
    irq/softirq time is left out: at 100,000 loopback requests/s the kernel's network softirq work
    (partly in ksoftirqd) would otherwise look like someone else's load.
    """
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + steal) / CLK_TCK


def rss_bytes(root: int) -> int:
    """Resident set size summed over the tree (shared pages of forked workers count once per process)."""
    total = 0
    for pid in tree_pids(root):
        try:
            statm = Path(f"/proc/{pid}/statm").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(statm[1]) * PAGE_SIZE
    return total


@dataclass
class RssSampler:
    """Samples the tree's RSS in a background thread and keeps the peak.

    Why sampling instead of VmHWM: VmHWM is the peak over a process's whole life, so it cannot tell the
    peak of one scenario from that of an earlier one when the gateway keeps running between scenarios.
    """

    root: int
    interval_s: float = 0.1
    peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self.peak = rss_bytes(self.root)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        # Bounded: one sample per interval until stopped, and at most a day's worth.
        for _ in range(int(86_400 / self.interval_s)):
            if self._stop.wait(self.interval_s):
                return
            self.peak = max(self.peak, rss_bytes(self.root))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.peak = max(self.peak, rss_bytes(self.root))
