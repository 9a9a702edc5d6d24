"""The serving processes' entry point (chatsite/serving.py), as daphne imports it."""

import json
import os
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]


def collector_after_importing(module: str) -> tuple[int, int, int]:
    """In a fresh interpreter: objects frozen, objects the collector walks, young threshold."""
    script = (
        f"import gc, json; import {module};"
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
    frozen, walked, young_threshold = json.loads(out.splitlines()[-1])
    return frozen, walked, young_threshold


def test_what_the_serving_process_made_as_it_started_is_left_out_of_garbage_collection():
    frozen, walked, young_threshold = collector_after_importing("chatsite.serving")

    # A full collection walks only what was made since: a few objects here, not Django's.
    assert frozen > 100_000 and walked < frozen // 100
    # The young generation is collected every 10,000 allocations, not every 700.
    assert young_threshold == 10_000


def test_the_application_alone_keeps_pythons_collector_as_it_is():
    # The test suite imports it: its runs, whole or in part, collect as Python does.
    frozen, _walked, young_threshold = collector_after_importing("chatsite.asgi")

    assert frozen < 10_000 and young_threshold == 700
