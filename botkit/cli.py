"""The `botkit` command. It owns the event loop and builds the parts from settings.

Each command imports what it needs when it runs, so `botkit --help` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import secrets
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from botkit.errors import BotkitError, ConfigError, Problem

if TYPE_CHECKING:
    from botkit.home import BotDefinition
    from botkit.settings import Settings

Command = Callable[[argparse.Namespace], int]
T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from botkit.logfilter import SecretRedactor

    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose + args.more, 2)],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # On the root's handlers, the redactor sees every logger's records; `_settings`
    # gives it every secret as soon as they are read.
    args.redactor = SecretRedactor()
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(args.redactor)
    command: Command = args.command
    try:
        return command(args)
    except ConfigError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return 1
    except BotkitError as err:
        print(f"botkit: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        for handler in handlers:
            handler.removeFilter(args.redactor)


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run the event loop: uvloop's where it is installed (not on Windows), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def tune_collector() -> None:
    """Set the garbage collector for a long-running server, once it has started: what
    start-up made (bots, FAQ indexes, libraries) is frozen out of every later
    collection, and each generation is collected far less often (the youngest after
    50,000 new objects, not 700; the whole heap after 250 million, minutes of a busy
    server). A burst of thousands of messages otherwise rescans the whole heap over and
    over: bench/burst.py, 10,000 conversations at once, 0.78 ms of CPU a user with
    (7,000, 10, 10) and 0.55 ms with these, against 0.51 with no collection at all."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def _options(verbose: str) -> argparse.ArgumentParser:
    """`--home` and `-v`, accepted before the command and after it."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--home",
        type=Path,
        default=argparse.SUPPRESS,
        help="the folder holding prompts/ and bots/ (default: $BOTKIT_HOME, else .)",
    )
    # Counted separately before and after the command, and added up: a subcommand's
    # parser starts from its own defaults and would otherwise reset `botkit -v serve`.
    options.add_argument(
        "-v", "--verbose", action="count", dest=verbose, default=0, help="log more (-vv: debug)"
    )
    return options


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="botkit",
        parents=[_options("verbose")],
        description="Customer-support bots from prompt folders.",
    )
    parser.add_argument("--version", action=_PrintVersion, help="print botkit's version and exit")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    after = _options("more")

    def add(name: str, run: Command, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[after], help=help, description=help)
        sub.set_defaults(command=run)
        return sub

    add("list", _list, "list the bots in the bot home")
    chat = add("chat", _chat, "talk to a bot in the terminal (one message per line when piped)")
    chat.add_argument("name", help="the bot: a folder under prompts/")
    chat.add_argument("--user", help="the user to talk as (default: your login name)")
    chat.add_argument("--new", action="store_true", help="forget the conversation first")
    check = add("check", _check, "validate prompt folders and settings without running")
    check.add_argument("name", nargs="?", help="one bot (default: all)")
    new = add("new", _new, "create prompts/NAME/ and bots/NAME.toml from a working template")
    new.add_argument("name", help="the new bot's name")
    test = add("test", _test, "hold the conversations of prompts/NAME/tests/*.yaml with the bot")
    test.add_argument("names", nargs="*", metavar="NAME", help="the bots (default: all)")
    test.add_argument(
        "--llm",
        action="store_true",
        help="answer with the configured model and run the judge: lines (default: offline)",
    )
    test.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML to FILE")
    evaluate = add("eval", _eval, "measure how well the bot's FAQ finds the right snippet")
    evaluate.add_argument("name", help="the bot: a folder under prompts/")
    evaluate.add_argument(
        "--queries",
        type=Path,
        metavar="FILE",
        help="real questions instead: a CSV file of question,expected_snippet",
    )
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    usage = add("usage", _usage, "tokens and cost per bot and day")
    usage.add_argument("name", nargs="?", help="one bot (default: all)")
    usage.add_argument("--days", type=int, default=7, help="how many days back (default: 7)")
    add("models", _models, "list the models the configured LLM API offers")
    report = add("report", _report, "what a bot did, and the questions it could not answer")
    report.add_argument("name", help="the bot")
    report.add_argument("--days", type=int, default=7, help="how many days back (default: 7)")
    report.add_argument("--html", type=Path, metavar="FILE", help="also write a page with charts")
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    transcripts = add("transcripts", _transcripts, "export a bot's conversations")
    transcripts.add_argument("name", help="the bot")
    transcripts.add_argument(
        "--since", type=_date, metavar="DATE", help="conversations since DATE (YYYY-MM-DD, UTC)"
    )
    transcripts.add_argument("--user", metavar="ID", help="only this user's conversations")
    transcripts.add_argument(
        "--format",
        choices=("jsonl", "md"),
        default="jsonl",
        help="JSON Lines (default) or Markdown",
    )
    forget = add("forget", _forget, "delete everything kept about one user")
    forget.add_argument(
        "--user", required=True, metavar="ID", help="the user, as channels name them"
    )
    forget.add_argument(
        "--bot", metavar="NAME", help="only what this bot keeps (default: every bot)"
    )
    purge = add("purge", _purge, "delete conversations older than their bot's retention")
    purge.add_argument("names", nargs="*", metavar="NAME", help="the bots (default: all)")
    handoffs = add("handoffs", _handoffs, "the conversations waiting for or with a person")
    handoffs.add_argument("name", nargs="?", help="one bot (default: all)")
    serve = add("serve", _serve, "run bots on Telegram, Slack and the web until stopped")
    serve.add_argument("names", nargs="+", metavar="NAME", help="the bots to serve")
    serve.add_argument(
        "--channel",
        action="append",
        dest="channels",
        metavar="CHANNEL",
        help="web, telegram or slack; give it again for several (default: web)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="HTTP address (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="HTTP port (default: 8080)")
    serve.add_argument(
        "--webhook", metavar="URL", help="Telegram: receive updates at this public URL"
    )
    serve.add_argument(
        "--reload",
        action="store_true",
        help="reload a bot when its files change (SIGHUP always reloads every bot)",
    )
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    from botkit.logfilter import secrets_of
    from botkit.settings import Settings

    settings = Settings.from_environment(home=args.home if "home" in args else None)
    args.redactor.add(*secrets_of(settings))
    return settings


def _redact_keys(args: argparse.Namespace, bots: Sequence[BotDefinition]) -> None:
    """The fallbacks' keys come from variables each bot's TOML names: redact them too
    (and any `SecretStr` a bot's settings may hold)."""
    from botkit.logfilter import secrets_of

    for bot in bots:
        args.redactor.add(*(f.api_key for f in bot.settings.fallbacks), *secrets_of(bot.settings))


def _list(args: argparse.Namespace) -> int:
    from botkit.home import BotHome

    home = BotHome(_settings(args).home)
    names = home.names()
    orphans = {Path(problem.path).stem: problem for problem in home.orphans()}
    if not names and not orphans:
        print(f"no bots in {home.path.resolve()}; create one with 'botkit new NAME'")
        return 0
    width = max(len(name) for name in [*names, *orphans])
    broken = bool(orphans)
    for name in names:
        if problems := home.check(name):
            broken = True
            count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
            print(f"{name:<{width}}  BROKEN ({count}): see botkit check {name}")
        else:
            print(f"{name:<{width}}  {home.describe(name)}".rstrip())
    for name, problem in orphans.items():
        print(f"{name:<{width}}  BROKEN: {problem.message}")
    return 1 if broken else 0


def _check(args: argparse.Namespace) -> int:
    from botkit.home import BotHome

    home = BotHome(_settings(args).home)
    names = [args.name] if args.name else home.names()
    orphans = [] if args.name else home.orphans()
    for problem in orphans:
        print(problem)
    if not names:
        print(f"{home.prompts}: no bots here; create one with 'botkit new NAME'", file=sys.stderr)
        return 1
    failed = bool(orphans)
    for name in names:
        problems = home.check(name)
        failed = failed or bool(problems)
        for problem in problems:
            print(problem)
        if not problems:
            print(f"{name}: ok")
    return 1 if failed else 0


def _new(args: argparse.Namespace) -> int:
    from botkit.home import BotHome
    from botkit.scaffold import create_bot

    home = BotHome(_settings(args).home)
    for path in create_bot(home, args.name):
        print(f"created {path}")
    print(f"Try it: botkit chat {args.name}")
    print(
        f"As you edit: botkit check {args.name}, botkit test {args.name}, botkit eval {args.name}"
    )
    return 0


def _test(args: argparse.Namespace) -> int:
    from contextlib import AsyncExitStack

    from botkit.app import BotApp
    from botkit.home import BotHome
    from botkit.llm.base import Responder
    from botkit.llm.offline import FaqResponder
    from botkit.rehearsal import CaseResult, Judge, Rehearsal, junit_xml

    settings = _settings(args)
    home = BotHome(settings.home)
    names = list(dict.fromkeys(args.names)) or home.names()
    if not names:
        print(f"{home.prompts}: no bots here; create one with 'botkit new NAME'", file=sys.stderr)
        return 1
    bots = [home.load_checked(name) for name in names]
    plans = []
    problems: list[Problem] = []
    for bot in bots:
        cases, found = home.cases(bot)
        problems += found
        if cases:
            plans.append((bot, cases))
        elif not found:
            print(f"{bot.name}: no cases in {home.shown(bot.folder / 'tests')}/*.yaml")
    if problems:  # a malformed case file is the author's mistake, not a failing case
        for problem in problems:
            print(problem, file=sys.stderr)
        return 2
    if not plans:
        print("nothing to test: write cases in prompts/NAME/tests/*.yaml", file=sys.stderr)
        return 1
    if args.llm and not settings.llm_configured:
        print("botkit: --llm needs BOTKIT_LLM_API_KEY or BOTKIT_LLM_BASE_URL", file=sys.stderr)
        return 2
    # Conversations and token records of a test run never reach the real store.
    settings = settings.model_copy(
        update={"store": settings.store.model_copy(update={"url": "memory://"})}
    )

    async def run() -> list[CaseResult]:
        results = []
        async with AsyncExitStack() as stack:
            responders: dict[str, Responder] = {}
            if args.llm:
                app = await stack.enter_async_context(BotApp(settings=settings, bots=bots))
                responders = {name: p.responder for name, p in app.pipelines.items()}
            for bot, cases in plans:
                responder = responders.get(bot.name) or FaqResponder(bot)
                judge = Judge(responder, bot.name) if args.llm else None
                rehearsal = Rehearsal(bot, responder, judge=judge)
                for case in cases:
                    result = await rehearsal.run(case)
                    print(result.line())
                    for line in result.details():
                        print(f"      {line}")
                    sys.stdout.flush()
                    results.append(result)
        return results

    results = run_async(run())
    failed = sum(not r.passed for r in results)
    summary = f"{len(results) - failed} passed, {failed} failed"
    if skipped := sum(r.judges_skipped for r in results):
        summary += f"; {skipped} judge: line{'s' * (skipped > 1)} not run offline (use --llm)"
    print(summary)
    if args.junit:
        args.junit.write_bytes(junit_xml(results))
    return 1 if failed else 0


def _eval(args: argparse.Namespace) -> int:
    import json

    from botkit.casebook import SnippetNames
    from botkit.evaluation import evaluate_queries, leave_one_out, read_queries, what_is_missing
    from botkit.home import BotHome

    home = BotHome(_settings(args).home)
    bot = home.load(args.name)
    queries = None
    if args.queries:
        try:
            queries = read_queries(args.queries, SnippetNames(bot.faq.snippets))
        except ConfigError as err:  # the author's file, like a malformed case file
            for problem in err.problems:
                print(problem, file=sys.stderr)
            return 2
    if (missing := what_is_missing(bot, queries)) is not None:
        print(json.dumps({"bot": bot.name, "needs": missing}) if args.json else missing)
        return 0
    if queries is None:
        report = leave_one_out(bot)
    else:
        report = evaluate_queries(bot, queries, args.queries.as_posix())
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        print("\n".join(report.lines()))
    return 0


def _chat(args: argparse.Namespace) -> int:
    from botkit.adapters.console import CHANNEL, ConsoleAdapter, answers
    from botkit.app import BotApp
    from botkit.home import BotHome
    from botkit.messages import conversation_key

    settings = _settings(args)
    bot = BotHome(settings.home).load_checked(args.name)
    _redact_keys(args, [bot])
    user = args.user or getpass.getuser()

    async def run() -> None:
        async with BotApp(settings=settings, bots=[bot]) as app:
            if args.new:
                await app.store.reset(conversation_key(bot.name, CHANNEL, user))
            pipeline = app.pipelines[bot.name]
            terminal = sys.stdout.isatty()
            adapter = ConsoleAdapter(
                answer=answers(pipeline),
                bot=bot.name,
                user_id=user,
                stdin=sys.stdin,
                stdout=sys.stdout,
                interactive=sys.stdin.isatty() and terminal,
                markdown=terminal,
            )
            await adapter.run()

    run_async(run())
    return 0


def _serve(args: argparse.Namespace) -> int:
    from pydantic import SecretStr

    from botkit.adapters import ServeOptions
    from botkit.app import BotApp
    from botkit.home import BotHome
    from botkit.serve import load_channel, serve

    settings = _settings(args)
    home = BotHome(settings.home)
    bots = [home.load_checked(name) for name in dict.fromkeys(args.names)]
    _redact_keys(args, bots)
    if args.webhook and settings.telegram.webhook_secret is None:
        # Made here rather than by the channel, so the redactor knows it before it is sent.
        secret = SecretStr(secrets.token_urlsafe(32))
        telegram = settings.telegram.model_copy(update={"webhook_secret": secret})
        settings = settings.model_copy(update={"telegram": telegram})
        args.redactor.add(secret)
    options = ServeOptions(
        channels=tuple(dict.fromkeys(args.channels or ["web"])),
        host=args.host,
        port=args.port,
        webhook_url=args.webhook,
    )
    for channel in options.channels:
        load_channel(channel)

    if args.reload:  # the author's loop: say what each edit did, without -v
        logging.getLogger("botkit.reloader").setLevel(min(logging.INFO, logging.root.level))

    async def run() -> None:
        async with BotApp(settings=settings, bots=bots) as app:
            tune_collector()
            await serve(app, options, reload=args.reload)

    run_async(run())
    return 0


def _usage(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from botkit.llm.usage import cost
    from botkit.stores import open_store_as

    settings = _settings(args)
    since = (datetime.now(UTC) - timedelta(days=max(args.days, 1) - 1)).strftime("%Y-%m-%d")

    async def totals() -> list[Any]:
        async with await open_store_as(settings.store, home=settings.home) as store:
            return await store.usage_totals(since=since, bot=args.name)

    rows = run_async(totals())
    header = ("day", "bot", "model", "prompt", "completion", "total", "cost")
    table = [header]
    for row in rows:
        price = cost(row, settings.llm.prices)
        table.append(
            (
                row.day,
                row.bot,
                row.model,
                f"{row.prompt_tokens:,}",
                f"{row.completion_tokens:,}",
                f"{row.prompt_tokens + row.completion_tokens:,}",
                "-" if price is None else f"{price:.4f}",
            )
        )
    if len(table) == 1:
        print(f"no usage since {since}")
        return 0
    _print_table(table, left=3)
    return 0


def _date(value: str) -> float:
    """A day (YYYY-MM-DD, UTC) or an ISO time, as seconds since the epoch."""
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date such as 2026-11-30") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _report(args: argparse.Namespace) -> int:
    import json

    from botkit.home import BotHome
    from botkit.report import gather
    from botkit.stores import open_store_as

    settings = _settings(args)
    bot = BotHome(settings.home).load(args.name)
    if args.html is not None:
        from botkit.report_page import require_plotting

        require_plotting()  # before the store is read: the pip command, at once

    async def read() -> Any:
        async with await open_store_as(settings.store, home=settings.home) as store:
            return await gather(store, bot, days=max(args.days, 1), prices=settings.llm.prices)

    report = run_async(read())
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        print("\n".join(report.lines()))
    if args.html is not None:
        from botkit.report_page import page

        args.html.write_text(page(report), encoding="utf-8")
        print(f"wrote {args.html}", file=sys.stderr)
    return 0


def _transcripts(args: argparse.Namespace) -> int:
    from botkit.stores import open_store_as
    from botkit.transcripts import render, transcripts

    settings = _settings(args)

    async def export() -> int:
        count = 0
        async with await open_store_as(settings.store, home=settings.home) as store:
            async for transcript in transcripts(store, args.name, since=args.since, user=args.user):
                print(render(transcript, args.format))
                count += 1
        return count

    if not run_async(export()):
        print(f"{args.name}: no conversations to export", file=sys.stderr)
    return 0


def _forget(args: argparse.Namespace) -> int:
    from botkit.privacy import forget
    from botkit.stores import open_store_as

    settings = _settings(args)

    async def erase() -> Any:
        async with await open_store_as(settings.store, home=settings.home) as store:
            return await forget(store, args.user, bot=args.bot)

    done = run_async(erase())
    whose = f"user {args.user!r}" + (f" of bot {args.bot}" if args.bot else "")
    if done.nothing:
        print(f"nothing is kept about {whose}: nothing deleted")
        return 0
    print(
        f"deleted what was kept about {whose}: {done.conversations} conversations"
        + (f" (and their part of {done.shared} shared ones)" if done.shared else "")
        + f", {done.messages} messages, {done.votes} votes, {done.handoffs} handoffs;"
        f" {done.usage_rows} token rows no longer name them"
    )
    return 0


def _purge(args: argparse.Namespace) -> int:
    from botkit.home import BotHome
    from botkit.privacy import purge
    from botkit.stores import open_store_as

    settings = _settings(args)
    home = BotHome(settings.home)
    bots = [home.load(name) for name in (args.names or home.names())]

    async def run() -> list[tuple[str, int | None]]:
        done: list[tuple[str, int | None]] = []
        async with await open_store_as(settings.store, home=settings.home) as store:
            for bot in bots:
                retention = bot.settings.retention
                count = (
                    None if retention is None else await purge(store, bot.name, retention=retention)
                )
                done.append((bot.name, count))
        return done

    for name, count in run_async(run()):
        if count is None:
            print(f"{name}: no retention set in bots/{name}.toml; its conversations are kept")
        else:
            print(f"{name}: deleted {count} conversation{'s' * (count != 1)} past its retention")
    return 0


def _handoffs(args: argparse.Namespace) -> int:
    import time

    from botkit.stores import open_store_as

    settings = _settings(args)

    async def open_handoffs() -> list[Any]:
        async with await open_store_as(settings.store, home=settings.home) as store:
            return await store.handoffs_open(args.name)

    handoffs = run_async(open_handoffs())
    if not handoffs:
        print(f"no open handoffs{f' for {args.name}' if args.name else ''}")
        return 0
    now = time.time()
    table = [("id", "bot", "state", "agent", "age", "customer", "channel", "reason")]
    for h in handoffs:
        table.append(
            (
                h.id,
                h.bot,
                h.state,
                h.agent_name or "-",
                _age(now - h.created),
                h.user_name or h.user_id,
                h.channel,
                h.reason or h.trigger,
            )
        )
    _print_table(table, left=len(table[0]))
    return 0


def _age(seconds: float) -> str:
    """4s, 12m, 3h, 2d: how long ago, to the coarsest unit that is at least one."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _print_table(rows: Sequence[Sequence[str]], *, left: int) -> None:
    """Columns padded to their widest cell; the first `left` ones left-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())


def _models(args: argparse.Namespace) -> int:
    from botkit.llm.client import CompletionClient, Timeouts

    settings = _settings(args)
    llm = settings.llm
    if not settings.llm_configured:
        raise ConfigError(
            [
                Problem(
                    "BOTKIT_LLM_API_KEY",
                    "no LLM is configured: set BOTKIT_LLM_API_KEY or BOTKIT_LLM_BASE_URL",
                )
            ]
        )

    async def models() -> list[str]:
        async with CompletionClient(
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key,
            timeouts=Timeouts(llm.timeout_connect, llm.timeout_read, llm.timeout_total),
            headers=llm.headers,
        ) as client:
            return await client.models()

    for model in sorted(run_async(models())):
        print(model)
    return 0


class _PrintVersion(argparse.Action):
    """`--version`; the installed metadata is read only when it is asked for (see botkit)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        import botkit

        print(f"botkit {botkit.__version__}")
        parser.exit()
