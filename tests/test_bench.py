"""The benchmark keeps working: `./run bench --quick` ends, and every stream of every N
arrived exact and whole. Its timings are read by people, never asserted here."""

import json
import os
import subprocess
import sys
from pathlib import Path

from bench import procs

BASE_DIR = Path(__file__).resolve().parent.parent


def test_the_quick_benchmark_runs_and_every_reply_arrives_exact(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    # What `./run bench` execs, with the suite's interpreter (the venv is already set up).
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(out)],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    phases = json.loads(out.read_text())["phases"]
    assert {(p["n"], p["transport"]) for p in phases} == {
        (n, transport) for n in (1, 10) for transport in ("straight", "sse", "ws")
    }
    for phase in phases:
        assert (phase["exact"], phase["errors"]) == (phase["n"], {}), phase


def test_the_search_benchmark_finds_exactly_the_planted_messages(tmp_path: Path) -> None:
    out = tmp_path / "search.json"
    small = ["--conversations", "40", "--messages", "6", "--loads", "2"]
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--search", *small, "--json", str(out)],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["problems"] == []
    assert report["messages"] == (40 + 4) * 6
    assert any(name.startswith("GET /chat/search: the planted word") for name in report["figures"])
    assert "chat page" in report["figures"]
    assert "the list's next page, half way down" in report["figures"]


def test_a_process_trees_cpu_is_read_finer_than_clock_ticks() -> None:
    # 30 ms of work in a thread that then ends, and the child waits to be read: stat's
    # clock ticks would count it in whole hundredths of a second.
    burn = (
        "import sys, threading, time\n"
        "def work():\n"
        "    end = time.thread_time() + 0.03\n"
        "    while time.thread_time() < end: pass\n"
        "worker = threading.Thread(target=work)\n"
        "worker.start()\n"
        "worker.join()\n"
        "print(flush=True)\n"
        "sys.stdin.read()"
    )
    child = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        child.stdout.readline()  # the work is done
        [spent] = procs.ProcessTree(child.pid).cpu_by_process_since(procs.TreeSample())
    finally:
        child.communicate(b"")

    assert spent >= 0.03  # the ended thread's work is counted
    ticks = spent * os.sysconf("SC_CLK_TCK")
    assert abs(ticks - round(ticks)) > 1e-6


def test_a_database_servers_cpu_counts_as_the_apps_but_not_its_memory() -> None:
    burn = (
        "import sys, time\n"
        "end = time.process_time() + 0.03\n"
        "while time.process_time() < end: pass\n"
        "print(flush=True)\n"
        "sys.stdin.read()"
    )
    app, database = (
        subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        for code in ("import sys; print(flush=True); sys.stdin.read()", burn)
    )
    try:
        for child in (app, database):
            assert child.stdout is not None
            child.stdout.readline()  # started; the database's work is done
        tree = procs.ProcessTree(app.pid, cpu_also=database.pid)
        spent = tree.cpu_by_process_since(procs.TreeSample())
        pids = tree.pids()
    finally:
        for child in (app, database):
            child.communicate(b"")

    assert len(spent) == 2 and max(spent) >= 0.03
    assert pids == [app.pid]
