"""The benchmark's side-by-side table in Markdown: ours | LiteLLM | ours / LiteLLM (issue 13)."""

from __future__ import annotations

import math

QUANTILES = ("p50", "p95", "p99")


def _number(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}"


def _joined(values: list[float | None], unit: str = "", digits: int = 1) -> str:
    text = " / ".join(_number(v, digits) for v in values)
    return f"{text} {unit}".rstrip() if text.strip("— /") else "—"


def _ratios(ours: list[float | None], theirs: list[float | None]) -> str:
    out = []
    for a, b in zip(ours, theirs, strict=True):
        out.append(None if a is None or b is None or not b else a / b)
    return _joined(out, digits=2)


def _by_level(figures: dict) -> dict[int, dict]:
    return {level["level"]: level for level in figures.get("levels", [])}


def markdown_table(figures: dict) -> str:
    """Return the side-by-side table of one run's figures (what main() collected)."""
    levels = _by_level(figures)
    rows = [
        "| | ours | LiteLLM | ours / LiteLLM |",
        "|---|---|---|---|",
    ]
    has_litellm = any("litellm" in level for level in levels.values())

    def system(level: dict, name: str) -> dict | None:
        return level.get(name)

    if levels:
        first = 1 if 1 in levels else min(levels)
        over = levels[first]["overhead_ttft_ms"]
        ours = [over["ours"][q] for q in QUANTILES]
        theirs = [over["litellm"][q] for q in QUANTILES] if has_litellm else [None] * 3
        rows.append(
            f"| TTFT overhead over the mock, C={first}, p50 / p95 / p99 | {_joined(ours, 'ms')} "
            f"| {_joined(theirs, 'ms')} | {_ratios(ours, theirs)} |"
        )
        rate_levels = [c for c in sorted(levels) if c != 1] or sorted(levels)
        label = " / ".join(f"C={c}" for c in rate_levels)

        def per_level(name: str, key: str) -> list[float | None]:
            values: list[float | None] = []
            for c in cpu_levels if key == "cpu_ms_per_reply" else rate_levels:
                entry = system(levels[c], name)
                values.append(entry.get(key) if entry else None)
            return values

        cpu_levels = sorted(levels)
        ours_rate, their_rate = (
            per_level("ours", "replies_per_s"),
            per_level("litellm", "replies_per_s"),
        )
        rows.append(
            f"| replies/s at {label} | {_joined(ours_rate)} | {_joined(their_rate)} "
            f"| {_ratios(ours_rate, their_rate)} |"
        )
        ours_cpu, their_cpu = (
            per_level("ours", "cpu_ms_per_reply"),
            per_level("litellm", "cpu_ms_per_reply"),
        )
        cpu_label = " / ".join(f"C={c}" for c in cpu_levels)
        rows.append(
            f"| CPU per reply, {cpu_label} (each system's own processes) "
            f"| {_joined(ours_cpu, 'ms')} | {_joined(their_cpu, 'ms')} "
            f"| {_ratios(ours_cpu, their_cpu)} |"
        )
        if any("ours-v1" in levels[c] for c in levels):
            v1_over = levels[first]["overhead_ttft_ms"].get("ours-v1")
            v1_ttft = [v1_over[q] for q in QUANTILES] if v1_over else [None] * 3
            rows.append(
                f"| `/v1/chat/completions` (API key, not stored): TTFT overhead over the mock,"
                f" C={first}, p50 / p95 / p99 | {_joined(v1_ttft, 'ms')} | | |"
            )
            rows.append(
                f"| `/v1/chat/completions`: CPU per reply, {cpu_label} "
                f"| {_joined(per_level('ours-v1', 'cpu_ms_per_reply'), 'ms')} | | |"
            )
        mock_cpu = [system(levels[c], "mock").get("cpu_ms_per_reply") for c in cpu_levels]
        rows.append(
            f"| (the mock's own CPU per reply, {cpu_label}) | {_joined(mock_cpu, 'ms')} | | |"
        )
        # Both endpoints of ours: the chat API's and /v1's.
        errors = sum(
            levels[c]["ours"]["errors"] + (levels[c].get("ours-v1") or {}).get("errors", 0)
            for c in levels
        )
        their_errors = sum((levels[c].get("litellm") or {}).get("errors", 0) for c in levels)
        rows.append(
            f"| errors in the levels above | {errors} | {their_errors if has_litellm else '—'} | |"
        )
    cached = figures.get("cached")
    if cached:
        server = cached["server_ms"]
        rows.append(
            f"| cached reply, server time p50 / p99 (client TTFT p50) "
            f"| {_joined([server['p50'], server['p99']], 'ms')} "
            f"({_number(cached['client_ttft_ms']['p50'])} ms) | — | |"
        )
    api = figures.get("api_rate")
    if api:
        rows.append(
            f'| authenticated `GET /api/v1/chat/conversations` vs bare gunicorn "hello", same '
            f"host (C={api['concurrency']}, loopback) | {_number(api['ours']['req_per_s'], 0)} "
            f"req/s vs {_number(api['hello']['req_per_s'], 0)} | — | {api['ratio'] * 100:.0f} % |"
        )
        rows.append(
            f"| the same GET through nginx + TLS from the controller "
            f"| {_number(api['ours_via_nginx']['req_per_s'], 0)} req/s | — | |"
        )
    pss = figures.get("pss_mb")
    if pss:
        parts = ", ".join(f"{name} {pss[name]:.0f}" for name in pss if name != "total")
        rows.append(f"| PSS of auth + chat + admin | {pss['total']:.0f} MB ({parts}) | | |")
    capacity = figures.get("capacity")
    if capacity:
        last = capacity["steps"][-1] if capacity["steps"] else {}
        p99 = _number((last.get("ttft_ms") or {}).get("p99"))
        best = (
            _number(capacity["replies_per_s"])
            if capacity["replies_per_s"]
            else f"none (p99 {p99} ms already at C={last.get('level')})"
        )
        if capacity["replies_per_s"]:
            best += f" (last step C={last.get('level')}: p99 {p99} ms, {last.get('errors')} errors)"
        rows.append(
            f"| streamed replies/s before TTFT p99 passes {capacity['ttft_p99_limit_ms']:.0f} ms "
            f"| {best} | | |"
        )
    for result in figures.get("open_streams", []):
        over = result["overhead_ttft_ms"]
        rows.append(
            f"| {result['opened']:,} open streams ({result['open_rate_per_s']:g}/s, at most "
            f"{result['open_at_once']:,} open at once): first token, p50 / p99 TTFT overhead, "
            f"errors | {result['served']:,} served, {_number(over['p50'])} / "
            f"{_number(over['p99'])} ms, {result['errors']} | | |"
        )
    return "\n".join(rows)
