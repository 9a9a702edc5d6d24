"""The soak's short CI variant: streams with upstream faults and a Redis restart lose nothing.

`./run bench --soak` runs it for 10 minutes with 100 streams; this runs the same code for
25 seconds with 15. It asserts what was saved against what the clients were sent, never a time.
"""

import json
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def test_a_short_soak_with_faults_and_a_redis_restart_loses_nothing(tmp_path):
    out = tmp_path / "soak.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--soak",
            "--duration",
            "25",
            "--streams",
            "15",
            "--tokens",
            "40",
            "--json",
            str(out),
        ],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["admitted"] > 0
    assert sum(figures["faults_injected"].values()) > 0  # the faults really happened
    assert figures["user_messages_lost"] == 0
    assert figures["refused_but_saved"] == 0
    assert figures["text_mismatches"] == 0  # every saved reply is what its client was sent
    assert figures["left_streaming"] == 0
    assert set(figures["refused"]) <= {"HTTP 503"}  # refused during the outage, clearly
    assert figures["server_tracebacks"] == 0
