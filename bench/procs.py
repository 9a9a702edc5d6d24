"""Process metrics read from /proc: CPU-seconds, RSS and open-file limits of process trees.

The app serves from the launcher and whatever it starts (daphne workers), so every
figure is summed over the launcher and all its descendants, found by walking /proc.
"""

import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

# The clock id of a process's CPU time is made of its pid (Linux's MAKE_PROCESS_CPUCLOCK).
_CPUCLOCK_SCHED = 2
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def raise_fd_limit() -> tuple[int, int]:
    """Soft open-files limit up to the hard limit: 1,000 streams need more than 1,024 fds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # the process ended between listing and reading
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    return text.rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float | None:
    """The process's CPU-seconds, all its threads' (those ended too), to the nanosecond:
    its CPU-time clock. stat counts in clock ticks of 10 ms, and one reply of 200 tokens
    costs a few of them: its figure per 1,000 tokens was off by up to half."""
    try:
        return time.clock_gettime(((~pid) << 3) | _CPUCLOCK_SCHED)
    except OSError:  # the process ended
        return None


def rss_kib(pid: int) -> int:
    try:
        resident = Path(f"/proc/{pid}/statm").read_text().split()[1]
    except (OSError, IndexError):
        return 0
    return int(resident) * PAGE_KIB


def rss_anon_kib(pid: int) -> int:
    """The anonymous part of the RSS (heap, stacks): what a leak grows. The rest is
    mapped files, e.g. shared libraries paged in as new code paths run."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


def descendants(root: int) -> list[int]:
    """`root` and every process below it (children of children too)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, queue = [], [root]
    while queue:  # bounded: every pid is visited once, /proc holds a finite set
        pid = queue.pop()
        tree.append(pid)
        queue.extend(children.get(pid, []))
    return tree


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def open_files_limit(pid: int) -> int | None:
    """The soft 'Max open files' of a running process (what its sockets can reach)."""
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                value = line.split()[3]
                return None if value == "unlimited" else int(value)
    except (OSError, IndexError, ValueError):
        return None
    return None


@dataclass
class TreeSample:
    """CPU-seconds per pid of a process tree at one moment."""

    cpu: dict[int, float] = field(default_factory=dict)


class ProcessTree:
    """A process and its descendants, sampled before and after a phase."""

    def __init__(self, root: int, *, cpu_also: int | None = None) -> None:
        """`cpu_also`: another tree whose CPU counts as this one's (its memory does not):
        a PostgreSQL server's, doing what SQLite does inside the app's processes."""
        self.root = root
        self.cpu_also = cpu_also
        # A worker that exits mid-phase keeps the CPU it was last seen with.
        self._last_seen: dict[int, float] = {}

    def pids(self) -> list[int]:
        return descendants(self.root)

    def sample(self) -> TreeSample:
        sample = TreeSample()
        for pid in self.pids() + (descendants(self.cpu_also) if self.cpu_also else []):
            used = cpu_seconds(pid)
            if used is not None:
                sample.cpu[pid] = used
                self._last_seen[pid] = used
        return sample

    def cpu_since(self, before: TreeSample) -> float:
        return sum(self.cpu_by_process_since(before))

    def cpu_by_process_since(self, before: TreeSample) -> list[float]:
        """Each process's CPU-seconds since `before`, most first: how evenly the workers shared it."""
        after = self.sample()
        used = [
            # A pid born in the phase started at 0.
            after.cpu.get(pid, self._last_seen.get(pid, 0.0)) - before.cpu.get(pid, 0.0)
            for pid in set(before.cpu) | set(after.cpu)
        ]
        return sorted(used, reverse=True)

    def rss_kib(self) -> int:
        return sum(rss_kib(pid) for pid in self.pids())


def self_cpu_seconds() -> float:
    """This process's CPU (all its threads): the load client's cost."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
