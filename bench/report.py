"""Figures of a benchmark run: per-phase summaries, the Markdown table, and issue 9's targets."""

import math
from collections import Counter
from typing import Any

from bench.load_client import PhaseRun
from bench.model_server import token_text

Row = dict[str, Any]
STRAIGHT = "straight"


def percentiles(values: list[float]) -> dict[str, float] | None:
    """p50/p95/p99 by nearest rank (no interpolation: each figure is a stream that happened)."""
    if not values:
        return None
    ordered = sorted(values)

    def rank(fraction: float) -> float:
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99)}


def summarize(run: PhaseRun, *, n: int, transport: str, tokens: int) -> Row:
    results = run.results
    exact = sum(1 for r in results if not r.error)
    # First token over the streams that received one; the failed ones are in "errors".
    first = percentiles([r.first_token * 1000 for r in results if r.first_token is not None])
    return {
        "n": n,
        "transport": transport,
        "tokens_per_reply": tokens,
        "exact": exact,
        "errors": dict(Counter(r.error for r in results if r.error).most_common()),
        "first_token_ms": first,
        "wall_s": run.wall,
        "delivered_tokens_per_s": exact * tokens / run.wall,
        # Every token a client received, whole reply or not: what the server relayed.
        "relayed_tokens": sum(len(r.text.split()) for r in results),
        "incomplete_examples": [_gap(r.text, tokens) for r in results if r.error == "incomplete"][:5],
    }


def _gap(text: str, tokens: int) -> dict[str, int | None]:
    """How an incomplete reply differs: tokens received, and the first token missing or wrong."""
    received = text.split()
    wrong = next((i for i, word in enumerate(received) if word != token_text(i).strip()), None)
    first_bad = wrong if wrong is not None else (len(received) if len(received) < tokens else None)
    return {"received_tokens": len(received), "first_missing_or_wrong": first_bad}


def add_costs(row: Row, *, server_cpu: float, model_cpu: float, client_cpu: float, redis_cpu: float) -> None:
    row["server_cpu_s"] = server_cpu
    row["model_server_cpu_s"] = model_cpu
    row["load_client_cpu_s"] = client_cpu
    row["redis_cpu_s"] = redis_cpu
    relayed = row["relayed_tokens"]
    row["server_cpu_ms_per_1k_tokens"] = (
        server_cpu * 1000 / relayed * 1000 if relayed and row["transport"] != STRAIGHT else None
    )


def compare_to_straight(rows: list[Row]) -> None:
    """Added first-token time (same percentile) and delivered ratio against the same N's limit."""
    straight = {row["n"]: row for row in rows if row["transport"] == STRAIGHT}
    for row in rows:
        limit = straight.get(row["n"])
        row["added_first_token_ms"] = None
        row["delivered_vs_straight"] = None
        if limit is None:
            continue
        if row["first_token_ms"] and limit["first_token_ms"]:
            row["added_first_token_ms"] = {
                key: row["first_token_ms"][key] - limit["first_token_ms"][key]
                for key in ("p50", "p95", "p99")
            }
        if limit["delivered_tokens_per_s"]:
            row["delivered_vs_straight"] = row["delivered_tokens_per_s"] / limit["delivered_tokens_per_s"]


def _triple(values: dict[str, float] | None, sign: bool = False) -> str:
    if not values:
        return "-"
    fmt = "{:+.0f}" if sign else "{:.0f}"
    return " / ".join(fmt.format(values[key]) for key in ("p50", "p95", "p99"))


def _number(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def markdown_table(rows: list[Row]) -> str:
    header = [
        "N",
        "transport",
        "first token p50 / p95 / p99 ms",
        "added vs straight ms",
        "delivered tok/s",
        "vs straight",
        "exact",
        "errors",
        "server CPU ms / 1k tok",
        "CPU s: server / model / client / redis",
        "server RSS MiB",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        errors = ", ".join(f"{count} {kind}" for kind, count in row["errors"].items()) or "0"
        cpu = " / ".join(
            f"{row[key]:.1f}"
            for key in ("server_cpu_s", "model_server_cpu_s", "load_client_cpu_s", "redis_cpu_s")
        )
        cells = [
            str(row["n"]),
            row["transport"],
            _triple(row["first_token_ms"]),
            _triple(row["added_first_token_ms"], sign=True) if row["transport"] != STRAIGHT else "-",
            f"{row['delivered_tokens_per_s']:.0f}",
            _number(row["delivered_vs_straight"], "{:.2f}x"),
            f"{row['exact']}/{row['n']}",
            errors,
            _number(row["server_cpu_ms_per_1k_tokens"], "{:.0f}"),
            cpu,
            _number(row.get("server_rss_mib"), "{:.0f}"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _row(rows: list[Row], n: int, transport: str) -> Row | None:
    return next((r for r in rows if r["n"] == n and r["transport"] == transport), None)


def targets(rows: list[Row], idle: Row | None) -> list[Row]:
    """Issue 9's "What must hold", each with what this run measured: pass, fail, or not measured."""
    checks: list[Row] = []

    def check(name: str, measured: str, passed: bool | None) -> None:
        checks.append({"target": name, "measured": measured, "passed": passed})

    served = sorted({r["transport"] for r in rows if r["transport"] != STRAIGHT})
    for transport in served:
        at200 = _row(rows, 200, transport)
        ratio = at200["delivered_vs_straight"] if at200 else None
        check(
            f"{transport}: delivered >= 0.95x straight at N=200",
            _number(ratio, "{:.2f}x"),
            None if ratio is None else ratio >= 0.95,
        )
        added = at200["added_first_token_ms"] if at200 else None
        check(
            f"{transport}: first-token p95 <= +250 ms at N=200",
            "-" if not added else f"{added['p95']:+.0f} ms",
            None if not added else added["p95"] <= 250,
        )
        at500 = _row(rows, 500, transport)
        ratio = at500["delivered_vs_straight"] if at500 else None
        check(
            f"{transport}: delivered >= 0.7x straight at N=500",
            _number(ratio, "{:.2f}x"),
            None if ratio is None else ratio >= 0.7,
        )
        for n in (200, 500, 1000):
            row = _row(rows, n, transport)
            check(
                f"{transport}: every reply exact, 0 errors at N={n}",
                "-" if row is None else f"{row['exact']}/{n}",
                None if row is None else row["exact"] == n,
            )
        at1 = _row(rows, 1, transport)
        added = at1["added_first_token_ms"] if at1 else None
        check(
            f"{transport}: <= 20 ms added to the first token at N=1",
            "-" if not added else f"{added['p50']:+.1f} ms",
            None if not added else added["p50"] <= 20,
        )
    costs = [r["server_cpu_ms_per_1k_tokens"] for r in rows if r.get("server_cpu_ms_per_1k_tokens")]
    worst = max(costs) if costs else None
    check(
        "<= 150 ms server CPU per 1,000 tokens (worst phase)",
        _number(worst, "{:.0f} ms"),
        None if worst is None else worst <= 150,
    )
    per_socket = idle.get("kib_per_socket") if idle else None
    check(
        f"<= 40 KiB per idle socket (at {idle['opened'] if idle else '-'} sockets)",
        _number(per_socket, "{:.1f} KiB"),
        None if per_socket is None else per_socket <= 40,
    )
    return checks


def targets_text(checks: list[Row]) -> str:
    marks = {True: "PASS", False: "FAIL", None: "n/a "}
    return "\n".join(f"- [{marks[c['passed']]}] {c['target']}: {c['measured']}" for c in checks)
