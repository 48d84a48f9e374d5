"""Case 1: botkit's completion client against the openai SDK, plain httpx and bare aiohttp."""

from __future__ import annotations

from bench.support import Table, median, mock_llm, run_worker

CLIENTS = ("botkit", "openai", "httpx", "aiohttp")


def run(quick: bool) -> Table:
    seconds, repeats = (0.2, 1) if quick else (3.0, 3)
    table = Table(
        "Completion client",
        "local mock server (aiohttp, own core) answering a fixed completion; each cell a fresh "
        f"process on one core, {seconds:g} s, median of {repeats}; every client on the event "
        "loop botkit runs (uvloop where installed)",
        [
            "latency/conc/mode",
            *(f"{c} req/s" for c in CLIENTS),
            *(f"{c} µs cpu" for c in CLIENTS),
            "× openai",
            "× httpx",
        ],
    )
    for latency in (0, 50):
        with mock_llm(latency) as base_url:
            for concurrency in (1, 64):
                for mode in ("plain", "stream"):
                    rates: dict[str, float] = {}
                    cpus: dict[str, float] = {}
                    for client in CLIENTS:
                        runs = [
                            run_worker(
                                "bench.client_cell",
                                [
                                    client,
                                    base_url,
                                    "--concurrency",
                                    str(concurrency),
                                    "--mode",
                                    mode,
                                    "--seconds",
                                    str(seconds),
                                ],
                            )
                            for _ in range(repeats)
                        ]
                        rates[client] = median([r["requests"] / r["wall"] for r in runs])
                        cpus[client] = median([r["cpu"] / r["requests"] * 1e6 for r in runs])
                    table.add(
                        f"{latency} ms/{concurrency}/{mode}",
                        *(rates[c] for c in CLIENTS),
                        *(cpus[c] for c in CLIENTS),
                        rates["botkit"] / rates["openai"],
                        rates["botkit"] / rates["httpx"],
                    )
    ceiling = 64 / 0.050
    table.notes.append(f"ceiling at 50 ms and 64 in flight: {ceiling:,.0f} req/s")
    return table
