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


def test_memory_growth_is_told_apart_from_caches_filling_up():
    from bench.soak import _memory_figures

    # One sample per 15 s: a steady leak of 1 MiB a sample grows 4 MiB a minute in both halves.
    leak = _memory_figures([400_000 + 1024 * i for i in range(9)])
    filling = _memory_figures(
        [400_000, 410_240, 415_360, 417_920, 419_200, 419_840, 420_160, 420_320, 420_400]
    )

    assert leak == {"server_rss_mib_per_min_first_half": 4.0, "server_rss_mib_per_min_second_half": 4.0}
    assert filling["server_rss_mib_per_min_second_half"] < filling["server_rss_mib_per_min_first_half"] / 10


def test_a_mismatch_says_where_the_texts_part():
    from bench.soak import _first_difference

    assert _first_difference(" w1 w2 w3", " w1 w3 w3") == 5
    assert _first_difference(" w1 w2", " w1") == 3  # the client's text stopped short
    assert _first_difference(" w1", " w1") == 3
