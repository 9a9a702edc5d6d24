"""The serving process's entry point (chatsite/asgi.py), as daphne imports it."""

import json
import os
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]


def test_what_the_serving_process_made_as_it_started_is_left_out_of_garbage_collection():
    script = (
        "import gc, json; import chatsite.asgi;"
        " print(json.dumps([gc.get_freeze_count(), len(gc.get_objects()), gc.get_threshold()[0]]))"
    )

    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=BASE_DIR,
        env=os.environ,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    frozen, collected, young_threshold = json.loads(out.splitlines()[-1])

    # A full collection walks only what was made since: a few objects here, not Django's.
    assert frozen > 100_000 and collected < frozen // 100
    # The young generation is collected every 10,000 allocations, not every 700.
    assert young_threshold == 10_000
