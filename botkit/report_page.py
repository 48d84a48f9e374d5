"""`botkit report --html FILE`: the report as one self-contained page, with charts.

The charts are drawn by matplotlib (the `report` extra) as SVG, written into the page
itself: no script, no font, nothing is loaded from elsewhere, so the file can be
mailed or archived as it is. (plotly would inline its 4.6 MB of JavaScript into every
page; four charts of SVG weigh about 80 kB.)
"""

from __future__ import annotations

import html
import io
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from botkit.errors import ConfigError, Problem
from botkit.report import KINDS, Day, Report

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

COLOURS = {
    "model": "#2f6fdb",
    "faq": "#58a55c",
    "fallback": "#e0a030",
    "limit": "#9b59b6",
    "command": "#a0a4ab",
    "handoff": "#d9534f",
    "relayed": "#f0b6b4",
}
LABELS = {
    "model": "answered by the model",
    "faq": "answered from the FAQ",
    "fallback": "fallback",
    "limit": "daily limit",
    "command": "command",
    "handoff": "handed to a person",
    "relayed": "relayed to the person",
}
_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330;
       max-width: 1020px; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.period { color: #5b6272; margin-top: 0; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(180px, 1fr)); gap: .8rem; }
.figure { border: 1px solid #e3e6ec; border-radius: 8px; padding: .7rem .9rem; }
.figure b { display: block; font-size: 1.45rem; }
.figure span { color: #5b6272; font-size: .85rem; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 1rem; }
.charts svg { width: 100%; height: auto; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { padding: .3rem .5rem; border-bottom: 1px solid #e3e6ec; text-align: right; }
th:first-child, td:first-child { text-align: left; }
ol li { margin-bottom: .8rem; } .why { color: #5b6272; font-size: .9rem; }
q { font-style: italic; }
"""


def require_plotting() -> None:
    """Fail with the pip command when the `report` extra is missing."""
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError as err:
        message = "the HTML report draws its charts with matplotlib: pip install 'botkit[report]'"
        raise ConfigError([Problem("--html", message)]) from err


def page(report: Report) -> str:
    """The whole page, as HTML text."""
    require_plotting()
    title = f"{report.bot}: what the bot is doing"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no request for /favicon.ico
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="period">{_e(report.period)}</p>',
    ]
    if report.empty:
        parts.append(f"<p>No conversations in {_e(report.period)}.</p></body></html>")
        return "\n".join(parts)
    parts += [*_figures(report), "<h2>Day by day</h2>", '<div class="charts">']
    parts += [_svg(chart) for chart in _charts(report)]
    parts += ["</div>", *_day_table(report.per_day), *_groups(report), "</body></html>"]
    return "\n".join(parts)


def _figures(report: Report) -> Iterator[str]:
    fallback = report.outcomes.get("fallback", 0)
    figures = [
        (f"{report.conversations:,}", "conversations"),
        (report.share(report.resolved, report.conversations), "resolved by the bot"),
        (report.share(report.handed_off, report.conversations), "handed to a person"),
        (f"{report.messages:,}", "messages"),
        (f"{fallback:,}", "fallback answers"),
        (f"{report.thumbs_up:,} / {report.thumbs_down:,}", "thumbs up / down"),
        (_seconds(report.reply_p50), f"reply time p50 (p95 {_seconds(report.reply_p95)})"),
        (f"{report.tokens:,}", "tokens"),
        ("-" if report.cost is None else f"{report.cost:,.4f}", "cost"),
    ]
    yield '<div class="figures">'
    for value, label in figures:
        yield f'<div class="figure"><b>{_e(value)}</b><span>{_e(label)}</span></div>'
    yield "</div>"


def _charts(report: Report) -> Iterator[Figure]:
    days = [d.day[5:] for d in report.per_day]  # MM-DD

    figure, axes = _figure("Messages per day, by what became of them")
    bottom = [0] * len(days)
    for kind in KINDS:
        counts = [d.outcomes.get(kind, 0) for d in report.per_day]
        if any(counts):
            axes.bar(days, counts, bottom=bottom, color=COLOURS[kind], label=LABELS[kind])
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    _legend(axes)
    yield figure

    figure, axes = _figure("Reply time (seconds)")
    times = sorted(report.reply_seconds)
    if times:
        axes.hist(times, bins=min(30, max(5, len(times) // 4)), color=COLOURS["model"])
        for q, value in (("p50", report.reply_p50), ("p95", report.reply_p95)):
            if value is not None:
                axes.axvline(value, color="#1d2330", linestyle="--", linewidth=1)
                axes.annotate(q, (value, 0.92), xycoords=("data", "axes fraction"), fontsize=8)
    axes.set_ylabel("messages", fontsize=8)
    yield figure

    priced = any(d.cost is not None for d in report.per_day)
    figure, axes = _figure("Cost per day" if priced else "Tokens per day (no prices set)")
    values = [(d.cost or 0.0) if priced else d.tokens for d in report.per_day]
    axes.bar(days, values, color=COLOURS["limit"])
    yield figure

    figure, axes = _figure("Feedback per day")
    axes.bar(days, [d.thumbs_up for d in report.per_day], color=COLOURS["faq"], label="thumbs up")
    down = [-d.thumbs_down for d in report.per_day]
    axes.bar(days, down, color=COLOURS["handoff"], label="thumbs down")
    axes.axhline(0, color="#1d2330", linewidth=0.6)
    _legend(axes)
    yield figure


def _legend(axes: Axes) -> None:
    """Beside the chart, so it never hides a bar."""
    axes.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _figure(title: str) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 2.8), layout="constrained")
    axes = figure.subplots()
    axes.set_title(title, fontsize=10, loc="left")
    axes.tick_params(labelsize=8)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    return figure, axes


def _svg(figure: Figure) -> str:
    import matplotlib

    buffer = io.StringIO()
    # Text stays text (the page's font draws it); the same report gives the same page.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "botkit"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # without the XML declaration and doctype


def _day_table(days: Sequence[Day]) -> Iterator[str]:
    kinds = [kind for kind in KINDS if any(d.outcomes.get(kind) for d in days)]
    headers = ["day", "messages", *(LABELS[k] for k in kinds), "thumbs up", "thumbs down"]
    headers.append("reply p50")
    headers += ["tokens", "cost"]
    yield "<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in headers) + "</tr></thead>"
    yield "<tbody>"
    for d in days:
        cells: list[Any] = [d.day, d.messages, *(d.outcomes.get(k, 0) for k in kinds)]
        cells += [d.thumbs_up, d.thumbs_down, _seconds(d.reply_p50), f"{d.tokens:,}"]
        cells.append("-" if d.cost is None else f"{d.cost:.4f}")
        yield "<tr>" + "".join(f"<td>{_e(str(c))}</td>" for c in cells) + "</tr>"
    yield "</tbody></table>"


def _groups(report: Report) -> Iterator[str]:
    yield "<h2>Questions it could not answer: the FAQ entries to write next</h2>"
    if not report.groups:
        yield "<p>None: every question got an answer, and no answer a thumbs down.</p>"
        return
    yield "<ol>"
    reasons = {
        "fallback": "fallback",
        "thumbs_down": "thumbs down",
        "handoff": "handed to a person",
    }
    for group in report.groups:
        examples = " · ".join(f"<q>{_e(e)}</q>" for e in group.examples)
        why = ", ".join(f"{reasons[r]} {n}" for r, n in group.reasons.items() if n)
        if group.closest is None:
            nearest = "no FAQ snippet comes close"
        else:
            c = group.closest
            nearest = f"closest: {_e(c.source)} <q>{_e(c.question)}</q> ({c.confidence:.2f})"
        yield (
            f'<li><b>{group.count}×</b> {examples}<div class="why">{_e(why)} · {nearest}</div></li>'
        )
    yield "</ol>"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _e(text: str) -> str:
    return html.escape(text, quote=True)
