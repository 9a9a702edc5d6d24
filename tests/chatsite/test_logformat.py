"""LOG_FORMAT=json: each record one JSON object, with the fields given in `extra` as keys."""

import json
import logging

from chatsite.logformat import JsonFormatter


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("conversations.generation", logging.INFO, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def test_a_record_is_one_json_object_with_its_extra_fields_as_keys():
    line = JsonFormatter().format(record("Reply %s complete", 7, reply_id=7, status="complete"))

    entry = json.loads(line)
    assert "\n" not in line
    assert entry["message"] == "Reply 7 complete"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "conversations.generation"
    assert (entry["reply_id"], entry["status"]) == (7, "complete")
    assert entry["time"].endswith("+00:00")
    assert "args" not in entry and "msg" not in entry  # LogRecord's own attributes stay out


def test_an_exception_is_kept_and_text_stays_readable():
    try:
        raise ValueError("坏了")
    except ValueError:
        import sys

        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "失败", None, sys.exc_info())

    entry = json.loads(JsonFormatter().format(failed))

    assert entry["message"] == "失败"
    assert "ValueError: 坏了" in entry["exception"]
