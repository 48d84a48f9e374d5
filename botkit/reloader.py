"""Reloading served bots while they run: on SIGHUP, and as their files change with
`botkit serve --reload`.

A bot whose prompt folder or `bots/NAME.toml` changed is loaded and checked as at start
(`BotHome.load_checked`, on a thread so the event loop keeps answering), then swapped in
between messages by `BotApp.reload`: conversations, connections and answers under way
are untouched, and a message being answered finishes with the definition it started
with. A broken edit keeps the running version and logs each problem as
`file:line: message`; a folder deleted while serving keeps the bot on what it had.

A reload cannot change the desk people answer at: the `[handoff]` table's keys other
than `timeout` and `after_fallbacks`, and whether the table is there at all, stay as
they were until a restart, and the log says so. Neither can it change the environment
(`BOTKIT_*`: the store, the LLM API and its key, the channels' tokens), read once at
start, nor the budgets of an API a bot's endpoints already use.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from botkit.app import BotApp
from botkit.errors import ConfigError, UnknownBotError
from botkit.handoff import RELOADABLE, desk_settings
from botkit.home import BotDefinition, BotHome

logger = logging.getLogger(__name__)

SIGNAL = "SIGHUP"
"""What a reload asked for by a signal names as its cause."""


class Reloader:
    """Reloads the bots of a running `BotApp`: those named to `request`, and with `watch`,
    those whose files change."""

    def __init__(self, app: BotApp, *, watch: bool = False) -> None:
        self._app = app
        self._home = BotHome(app.settings.home)
        self._watch = watch
        self._pending: dict[str, str] = {}
        """The bots to reload, each with what asked for it (a changed file, SIGHUP)."""
        self._asked = asyncio.Event()

    def request(self, names: Iterable[str] | None = None, *, cause: str = SIGNAL) -> None:
        """Reload these bots (default: every one served) soon. Safe in a signal handler."""
        served = [bot.name for bot in self._app.bots]
        for name in served if names is None else names:
            self._pending.setdefault(name, cause)
        self._asked.set()

    async def run(self) -> None:
        """Reload what is asked for, one bot at a time, until cancelled; with `watch`,
        files that change ask for their bot."""
        async with asyncio.TaskGroup() as tasks:
            if self._watch:
                tasks.create_task(self._watch_files())
            while True:
                await self._asked.wait()
                self._asked.clear()
                pending, self._pending = self._pending, {}
                for name, cause in pending.items():
                    try:
                        await self.reload(name, cause=cause)
                    except Exception:  # the bot keeps running; so does the reloader
                        logger.exception("bot %s: could not reload (%s)", name, cause)

    async def reload(self, name: str, *, cause: str = SIGNAL) -> bool:
        """Load, check and swap in one bot's files; False (logged) when they are broken or
        gone, and the bot keeps the definition it runs."""
        old = next((bot for bot in self._app.bots if bot.name == name), None)
        if old is None:
            raise ValueError(f"bot {name!r} is not served by this process")
        try:
            new = await asyncio.to_thread(self._home.load_checked, name)
        except UnknownBotError:
            logger.error(
                "%s/: the folder is gone; bot %s keeps running on what it had "
                "(restore the folder, or stop serving the bot)",
                self._home.shown(old.folder).as_posix(),
                name,
            )
            return False
        except ConfigError as err:
            for problem in err.problems:
                logger.error("%s (bot %s not reloaded: it keeps running as it was)", problem, name)
            return False
        settings = self._home.shown(self._home.settings_path(name)).as_posix()
        new, notes = keep_restart_only(old, new)
        for note in notes:
            logger.warning("%s: %s", settings, note)
        self._app.reload(new)
        logger.info("bot %s reloaded (%s)", name, cause)
        return True

    async def _watch_files(self) -> None:
        from watchfiles import awatch

        folders = [p for p in (self._home.prompts, self._home.bots) if p.is_dir()]
        shown = " and ".join(f"{self._home.shown(p).as_posix()}/" for p in folders)
        unseen = "" if self._home.bots.is_dir() else " (no bots/ yet: SIGHUP reads one made later)"
        logger.info("watching %s for changes%s", shown, unseen)
        try:
            async for changes in awatch(*(p.resolve() for p in folders)):
                served = [bot.name for bot in self._app.bots]
                paths = (path for _, path in changes)
                for name, path in changed_bots(self._home, paths, served).items():
                    self.request([name], cause=f"{path} changed")
        except Exception:  # e.g. too many inotify watches: serving goes on
            logger.exception("cannot watch %s any more: send SIGHUP to reload", shown)


def changed_bots(home: BotHome, paths: Iterable[str], served: Iterable[str]) -> dict[str, str]:
    """The served bots whose files are among `paths`, each with one of its changed files
    as messages show it (relative to the home)."""
    served = set(served)
    root = home.path.resolve()
    prompts, bots = home.prompts.resolve(), home.bots.resolve()
    found: dict[str, str] = {}
    for text in sorted(paths):
        path = Path(text).resolve()
        if path.is_relative_to(prompts) and path != prompts:
            name = path.relative_to(prompts).parts[0]
        elif path.parent == bots and path.suffix == ".toml":
            name = path.stem
        else:
            continue
        if name in served:
            shown = path.relative_to(root) if path.is_relative_to(root) else path
            found.setdefault(name, shown.as_posix())
    return found


def keep_restart_only(old: BotDefinition, new: BotDefinition) -> tuple[BotDefinition, list[str]]:
    """`new` with what only a restart can change kept as in `old`, and a note for each."""
    notes: list[str] = []
    before, after = old.settings.handoff, new.settings.handoff
    handoff = after
    if desk_settings(before) != desk_settings(after):
        if before is None:
            handoff = None
            notes.append("[handoff] was added: the bot hands off only after a restart")
        elif after is None:
            handoff = before
            notes.append("[handoff] was removed: the bot still hands off until a restart")
        else:
            handoff = before.model_copy(update={key: getattr(after, key) for key in RELOADABLE})
            changed = _changed_keys(desk_settings(before) or {}, desk_settings(after) or {})
            notes.append(
                f"[handoff] {changed} changed: the desk stays as it was until a restart "
                f"({' and '.join(sorted(RELOADABLE))} are applied now)"
            )
    apis = {(f.base_url, f.api_key_env): f for f in old.settings.fallbacks}
    for endpoint in new.settings.fallbacks:
        known = apis.get((endpoint.base_url, endpoint.api_key_env))
        if known is not None and (known.requests_per_minute, known.tokens_per_minute) != (
            endpoint.requests_per_minute,
            endpoint.tokens_per_minute,
        ):
            notes.append(
                f"[[fallbacks]] {endpoint.base_url}: new requests_per_minute or "
                "tokens_per_minute take effect after a restart"
            )
    if handoff is not after:
        settings = new.settings.model_copy(update={"handoff": handoff})
        new = dataclasses.replace(new, settings=settings)
    return new, notes


def _changed_keys(before: Mapping[str, object], after: Mapping[str, object]) -> str:
    keys = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return ", ".join(keys)
