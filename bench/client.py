"""Case 1: botkit's completion client against its peers and its ceiling.

Peers: the openai SDK on its default httpx transport and on aiohttp (its own
`DefaultAioHttpClient`, the HTTP stack botkit uses), and plain httpx. The ceiling is bare
aiohttp: one POST and a JSON parse, nothing else, measured in the same run. Each cell
runs every client in turn, round after round (ABCDE ABCDE …, who goes first rotating), so
a noisy moment on the shared machine falls on all of them alike; the figure is the
median of the rounds.
"""

from __future__ import annotations

from bench.support import Table, median, mock_llm, run_worker

CLIENTS = ("botkit", "openai", "openai-aiohttp", "httpx", "aiohttp")
CELLS = [(ms, n, mode) for ms in (0, 50) for n in (1, 64) for mode in ("plain", "stream")]


def run(quick: bool) -> Table:
    seconds, rounds = (0.2, 1) if quick else (2.0, 5)
    table = Table(
        "Completion client",
        "local mock server (aiohttp, own core) answering a fixed completion; each cell a fresh "
        f"process on one core, {seconds:g} s; the clients interleaved, median of {rounds} "
        "rounds; every client on the event loop botkit runs (uvloop where installed); "
        "bare aiohttp is the measured ceiling",
        [
            "latency/conc/mode",
            *(f"{c} req/s" for c in CLIENTS),
            *(f"{c} µs cpu" for c in CLIENTS),
            "% of aiohttp",
            "× openai",
            "× openai-aiohttp",
        ],
    )
    cells = [(0, 64, "plain"), (50, 1, "stream")] if quick else CELLS
    for latency in sorted({ms for ms, _, _ in cells}):
        with mock_llm(latency) as base_url:
            for _, concurrency, mode in [cell for cell in cells if cell[0] == latency]:
                rates, cpus = measure(base_url, concurrency, mode, seconds, rounds)
                table.add(
                    f"{latency} ms/{concurrency}/{mode}",
                    *(rates[c] for c in CLIENTS),
                    *(cpus[c] for c in CLIENTS),
                    100 * rates["botkit"] / rates["aiohttp"],
                    rates["botkit"] / rates["openai"],
                    rates["botkit"] / rates["openai-aiohttp"],
                )
    table.notes.append(
        "targets: ≥ 95 % of aiohttp at 50 ms/64, ≥ 5× openai-aiohttp at 0 ms/64; "
        f"the latency alone allows {64 / 0.050:,.0f} req/s at 50 ms and 64 in flight"
    )
    return table


def measure(
    base_url: str, concurrency: int, mode: str, seconds: float, rounds: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Requests a second and CPU µs a request of each client: medians of interleaved rounds."""
    runs: dict[str, list[dict[str, float]]] = {c: [] for c in CLIENTS}
    for round_ in range(rounds):
        first = round_ % len(CLIENTS)
        for client in CLIENTS[first:] + CLIENTS[:first]:
            args = [client, base_url, "--concurrency", str(concurrency), "--mode", mode]
            runs[client].append(run_worker("bench.client_cell", [*args, "--seconds", str(seconds)]))
    rates = {c: median([r["requests"] / r["wall"] for r in runs[c]]) for c in CLIENTS}
    cpus = {c: median([r["cpu"] / r["requests"] * 1e6 for r in runs[c]]) for c in CLIENTS}
    return rates, cpus
