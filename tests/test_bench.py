"""The benchmark keeps working (its figures are read by people, not asserted here)."""

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "chat_bench.py"


def test_the_benchmark_runs_and_prints_its_figures():
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--users",
            "2",
            "--tokens",
            "5",
            "--conversations",
            "3",
            "--messages",
            "4",
            "--page-loads",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert "time to first token p50 / p95" in result.stdout
    assert "chat page, 3 conversations" in result.stdout
