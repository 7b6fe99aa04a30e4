"""The `groomguard` command line: demo, replay, run, config checks, schema, cases and erasure."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated, cast

import typer
from groomguard.app.runtime import build_engine
from groomguard.app.sinks import JsonlSink, TerminalSink
from groomguard.config import ConfigError, Settings, load_settings
from groomguard.engine import Engine, EngineStats
from groomguard.events import BaseEvent, schema_text
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table

app = typer.Typer(
    help="GroomGuard: grooming alerts for online communities.", no_args_is_help=True, add_completion=False
)
cases_app = typer.Typer(help="Look up cases.", no_args_is_help=True)
app.add_typer(cases_app, name="cases")

console = Console()
err = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (env GROOMGUARD_* overrides it)")
]
DbOption = Annotated[Path | None, typer.Option("--db", help="SQLite database file (overrides store.path)")]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load_or_exit(config: Path | None, header: str) -> Settings:
    """Load settings, or print every config problem with its key and fix hint and exit 1."""
    try:
        return load_settings(config)
    except ConfigError as error:
        err.print(f"[red]{escape(header)}: {len(error.problems)} problem(s)[/]")
        for problem in error.problems:
            err.print(f"  • [bold]{escape(problem.key)}[/]: {escape(problem.problem)}\n    fix: {escape(problem.hint)}")
        raise typer.Exit(1) from None


def _settings(config: Path | None, db: Path | None = None) -> Settings:
    settings = _load_or_exit(config, f"{config or 'config'}")
    if db is not None:
        settings.store.path = db
    return settings


#: The config a data command uses when neither --config nor GROOMGUARD_CONFIG names one (if it exists).
DEFAULT_CONFIG = Path("groomguard.toml")


def _store_label(settings: Settings) -> str:
    if settings.store.database_url:
        from groomguard.store.postgres import redact

        return f"PostgreSQL {redact(settings.store.database_url)}"
    return f"SQLite {settings.store.path.resolve()}"


def _data_settings(config: Path | None, db: Path | None, must_exist: bool) -> Settings:
    """Settings for a command that reads or changes stored data, saying which database it uses.

    Never a silent `./groomguard.db`: the database comes from --db, --config, GROOMGUARD_CONFIG, the
    GROOMGUARD_STORE__* variables, or ./groomguard.toml when it exists; otherwise the command stops and
    says how to choose. With `must_exist`, a missing SQLite file is an error, not a new empty database
    (an erasure reported against the wrong, empty file would look done).
    """
    origin = "--config" if config is not None else ""
    if config is None and os.environ.get("GROOMGUARD_CONFIG"):
        config, origin = Path(os.environ["GROOMGUARD_CONFIG"]), "GROOMGUARD_CONFIG"
    if config is None and DEFAULT_CONFIG.is_file():
        config, origin = DEFAULT_CONFIG, f"default {DEFAULT_CONFIG}"
    from_env = any(os.environ.get(k) for k in ("GROOMGUARD_STORE__PATH", "GROOMGUARD_STORE__DATABASE_URL"))
    if config is None and db is None and not from_env:
        err.print(
            "[red]no database chosen[/]: pass --config FILE or --db FILE, set GROOMGUARD_CONFIG, "
            f"or run where {DEFAULT_CONFIG} is"
        )
        raise typer.Exit(2)
    settings = _settings(config, db)
    label = _store_label(settings)
    if must_exist and not settings.store.database_url and not settings.store.path.is_file():
        err.print(f"[red]database {escape(label)} does not exist[/]: check --config or --db (nothing was created)")
        raise typer.Exit(1)
    via = "--db" if db is not None else (f"{origin} {config}" if config is not None else "environment")
    err.print(f"database: {escape(label)} (from {escape(via)})")
    return settings


def _setup_logging(settings: Settings, verbose: bool = False, quiet: bool = False) -> None:
    """Logs to stderr; `quiet` keeps only warnings and errors (no INFO lines through the progress bar)."""
    level = logging.DEBUG if verbose else getattr(logging, settings.logging.level)
    if quiet:
        level = max(level, logging.WARNING)
    if settings.logging.json_logs:
        from groomguard.app.logs import configure_logging

        configure_logging(level, json_logs=True)
        return
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
    )


def _summary(stats: EngineStats, elapsed: float, bad: int, cases: int) -> Table:
    table = Table(title="GroomGuard summary", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("events read", stats.received + bad),
        ("events stored", stats.stored),
        ("duplicates skipped", stats.duplicates),
        ("bad lines skipped", bad),
        ("findings", stats.findings),
        ("cases", cases),
        ("alerts", stats.alerts),
        ("alert updates", stats.alert_updates),
        ("child notices", stats.notices),
        ("child notices held back (rate limit)", stats.notices_suppressed),
        ("detector errors", stats.detector_errors),
        ("time", f"{elapsed:.2f} s"),
        ("events/s", f"{stats.processed / elapsed:,.0f}" if elapsed > 0 else "-"),
    ]
    if stats.dropped:
        rows.insert(3, ("events dropped unstored (the store failed)", stats.dropped))
    for name, value in rows:
        table.add_row(name, str(value))
    return table


class _ReplayStopped(Exception):
    """Raised into the replay loop after SIGTERM/SIGINT so it stops reading before the next event."""


class _StoppableFeed:
    """The engine as replay sees it: submit refuses new events once a stop signal arrived, never mid-submit."""

    def __init__(self, engine: Engine, stop_signals: list[int]) -> None:
        self.engine = engine
        self.stop_signals = stop_signals

    async def submit(self, event: BaseEvent) -> None:
        if self.stop_signals:
            raise _ReplayStopped
        await self.engine.submit(event)

    async def submit_many(self, events: Sequence[BaseEvent]) -> None:
        if self.stop_signals:
            raise _ReplayStopped
        await self.engine.submit_many(events)

    async def drain(self) -> None:
        await self.engine.drain()

    def reject(self, source: str, count: int = 1) -> None:
        self.engine.reject(source, count)


def _install_stop_handlers(callback: Callable[[int], None]) -> list[int]:
    """Route SIGTERM/SIGINT to `callback` on the running loop; returns the signals it could take over."""
    loop = asyncio.get_running_loop()
    handled = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, callback, int(signum))
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # not the main thread, or a platform without loop signal handlers: default behaviour
        handled.append(int(signum))
    return handled


def _remove_stop_handlers(handled: list[int]) -> None:
    loop = asyncio.get_running_loop()
    for signum in handled:
        loop.remove_signal_handler(signum)


async def _replay(settings: Settings, source: Path | str, out: Path | None, quiet: bool) -> int:
    from groomguard.adapters.replay import ReplayReport, replay

    # Cards are printed once the replay is done, each as it finally stands (see _final_cards).
    sinks: list = [TerminalSink(console, show_alerts=False)] if not quiet else []
    if out is not None:
        sinks.append(JsonlSink(out))
    engine = build_engine(settings, sinks)
    # SIGTERM/SIGINT stop reading new lines; engine.stop() then drains the queue and the outbox.
    stop_signals: list[int] = []
    handled = _install_stop_handlers(stop_signals.append)
    feed = cast(Engine, _StoppableFeed(engine, stop_signals))
    await engine.start()
    start = time.perf_counter()

    async def _feed() -> ReplayReport:
        if isinstance(source, Path) and source != Path("-") and sys.stderr.isatty():
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                console=err,
            ) as bar:
                task = bar.add_task(f"replaying {source.name}", total=source.stat().st_size)  # noqa: ASYNC240
                return await replay(feed, source, progress=lambda n: bar.advance(task, n))
        return await replay(feed, source)

    try:
        report = ReplayReport()
        try:
            report = await _feed()
        except _ReplayStopped:
            await engine.drain()
        elapsed = time.perf_counter() - start
        cases = len(await engine.store.list_cases(limit=100_000))
        if not quiet:
            await _final_cards(engine)
    finally:
        await engine.stop()
        _remove_stop_handlers(handled)
    if stop_signals:
        s = engine.stats
        err.print(
            f"stopped by {signal.Signals(stop_signals[0]).name}: queue drained, {s.received} events received, "
            f"{s.stored} stored, {s.duplicates} duplicates; run the same command again to continue",
            soft_wrap=True,
        )
        console.print(_summary(engine.stats, elapsed, report.bad, cases))
        return 128 + stop_signals[0]
    for number, reason in report.skipped[:20]:
        err.print(f"[yellow]line {number} skipped:[/] {reason}")
    if report.bad > 20:
        err.print(f"[yellow]… and {report.bad - 20} more bad lines[/]")
    console.print(_summary(engine.stats, elapsed, report.bad, cases))
    return 0


async def _final_cards(engine: Engine) -> None:
    """Each alerted case's card as it stands at the end, risk read at its community's clock.

    The same card, risk and peak that `cases list` and `cases show` print for the same database.
    """
    from groomguard.app.sinks import print_card
    from groomguard.workspace import clock_for, community_clocks

    clocks = await community_clocks(engine.store)
    cards = []
    for row in await engine.store.list_cases(limit=100_000):
        if not row["alert_version"]:
            continue
        found = await engine.store.get_case(row["id"])
        if found is not None:
            cards.append(engine.cases.render(found[0], clock_for(found[0], clocks)))
    for card in sorted(cards, key=lambda c: c.case_id):
        print_card(console, card)


@app.command()
def demo(
    db: DbOption = None,
    fresh: Annotated[bool, typer.Option(help="start from an empty database")] = True,
) -> None:
    """Replay the synthetic example community and print the alerts it raises."""
    settings = _settings(EXAMPLES / "groomguard.toml" if (EXAMPLES / "groomguard.toml").exists() else None, db)
    if db is None:
        settings.store.path = Path(".groomguard-demo.db")
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{settings.store.path}{suffix}").unlink(missing_ok=True)
    data = EXAMPLES / "community.jsonl"
    if not data.exists():
        err.print(f"[red]{data} is missing[/]: run `python examples/generate.py` to rebuild it")
        raise typer.Exit(1)
    _setup_logging(settings, quiet=True)  # the cards and the summary are the demo; INFO lines would bury them
    console.print(f"[bold]GroomGuard demo[/]: replaying {data.name} into {settings.store.path}")
    raise typer.Exit(asyncio.run(_replay(settings, data, None, quiet=False)))


@app.command("replay")
def replay_cmd(
    file: Annotated[str, typer.Argument(help="JSON Lines of events, or '-' for stdin")],
    config: ConfigOption = None,
    db: DbOption = None,
    out: Annotated[Path | None, typer.Option(help="also write every action as JSON Lines here")] = None,
    quiet: Annotated[
        bool, typer.Option(help="print only the summary (warnings and errors still go to stderr)")
    ] = False,
) -> None:
    """Replay events from a JSON Lines file into the engine; bad lines are reported and skipped."""
    source: Path | str = file if file == "-" else Path(file)
    if isinstance(source, Path) and not source.is_file():
        err.print(f"[red]{source}: no such file[/]")
        raise typer.Exit(1)
    settings = _data_settings(config, db, must_exist=False)
    _setup_logging(settings, quiet=quiet)
    raise typer.Exit(asyncio.run(_replay(settings, source, out, quiet)))


class StartFailure(Exception):
    """Start-up failed for a reason the operator can fix; the message is one line naming the fix."""


def _one_line(part: str, error: BaseException, settings: Settings) -> str:
    """A start-up error as one line that says what to fix, instead of a 100-line traceback."""
    import errno

    problems = getattr(error, "problems", None)
    if isinstance(error, ConfigError) and problems:
        return f"{part}: " + "; ".join(f"{p.key}: {p.problem} (fix: {p.hint})" for p in problems)
    if problems and all(isinstance(p, str) for p in problems):  # the Discord adapter's StartupError
        return f"{part}: " + "; ".join(problems)
    if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
        section = {"webhook": settings.webhook, "metrics": settings.metrics, "web": settings.web}.get(part)
        where = f"{section.host}:{section.port}" if section is not None else "its address"
        return f"{part}: {where} is already in use: stop the other process or set [{part}] port to a free one"
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, OSError | TimeoutError) or type(error).__module__.startswith(("aiohttp", "nio")):
        return f"{part}: cannot connect ({text}): check the network, the address and that the service is up"
    return f"{part}: {type(error).__name__}: {text} (run with --verbose for details)"


async def _start_part(part: str, settings: Settings, start: Awaitable[object]) -> object:
    try:
        return await start
    except (Exception, asyncio.CancelledError) as error:
        logging.getLogger("groomguard").debug("%s failed to start", part, exc_info=True)
        raise StartFailure(_one_line(part, error, settings)) from None


async def _run_adapters(settings: Settings) -> int:
    """Start the engine and every enabled adapter; stop cleanly on SIGINT/SIGTERM."""
    import signal

    from groomguard.adapters import enabled_adapters
    from groomguard.config import read_secret

    # Secrets before anything starts: a missing one is one line, with nothing half-started to hang on.
    for enabled, value, file, name in (
        (settings.webhook.enabled, settings.webhook.secret, settings.webhook.secret_file, "webhook.secret"),
        (settings.discord.enabled, settings.discord.token, settings.discord.token_file, "discord.token"),
    ):
        if enabled:
            try:
                read_secret(value, file, name)
            except ConfigError as error:
                raise StartFailure(_one_line(name.split(".")[0], error, settings)) from None
    adapters = enabled_adapters(settings)
    engine = build_engine(settings, [TerminalSink(console, show_updates=False), *adapters])
    from groomguard.app.metrics import start_metrics

    _metrics, metrics_server = await _start_part("metrics", settings, start_metrics(settings.metrics, engine))  # type: ignore[misc]
    try:
        await _start_part("store", settings, engine.start())
    except StartFailure:
        if metrics_server is not None:
            await metrics_server.stop()
        raise
    web_view = None
    if settings.web.enabled:
        from groomguard.app.web import WebView

        web_view = WebView(settings, engine)
        try:
            await _start_part("web", settings, web_view.start())
        except StartFailure:
            await engine.stop()
            if metrics_server is not None:
                await metrics_server.stop()
            raise
        err.print(f"web case view: {escape(settings.web.base_url())} (sign-in links: groomguard web-link NAME)")
    stop = asyncio.Event()
    follower = await _follow_shared_log(settings, engine)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = []
    try:
        for adapter in adapters:
            try:
                await _start_part(adapter.name, settings, adapter.start(engine))
            except StartFailure:
                with contextlib.suppress(Exception):
                    await adapter.stop()  # release what it opened (connections, threads) so exit cannot hang
                raise
            started.append(adapter)
            logging.getLogger("groomguard").info("adapter %s started", adapter.name)
        if adapters:
            # Actions that waited in the outbox while the platforms were offline go out now.
            await engine.redeliver()
        if settings.replay.path is not None:
            from groomguard.adapters.replay import replay

            report = await replay(engine, settings.replay.path)
            logging.getLogger("groomguard").info("replayed %d events, %d bad lines", report.submitted, report.bad)
            if not adapters and web_view is None:
                stop.set()
        await stop.wait()
    finally:
        if follower is not None:
            await follower.stop()
        for adapter in reversed(started):
            await adapter.stop()
        if web_view is not None:
            await web_view.stop()
        await engine.stop()
        if metrics_server is not None:
            await metrics_server.stop()
    return 0


async def _follow_shared_log(settings: Settings, engine: Engine):  # type: ignore[no-untyped-def]
    """On PostgreSQL, keep this engine processing its partitions' events and taking over those of engines that stop."""
    if not settings.store.database_url:
        return None
    from groomguard.follower import LogFollower

    follower = LogFollower(engine)
    await follower.start()
    return follower


@app.command()
def run(config: ConfigOption = None, verbose: bool = False) -> None:
    """Start the adapters the config enables (webhook, Discord, Matrix, replay) and run until stopped."""
    settings = _data_settings(config, None, must_exist=False)
    _setup_logging(settings, verbose)
    if settings.replay.path is None and not (
        settings.webhook.enabled or settings.discord.enabled or settings.matrix.enabled or settings.web.enabled
    ):
        err.print(
            "[red]nothing to run[/]: enable [webhook], [discord], [matrix] or [web], or set [replay] path, in the config"
        )
        raise typer.Exit(1)
    if settings.web.enabled:
        _check_web(settings)
    try:
        code = asyncio.run(_run_adapters(settings))
    except StartFailure as failure:
        err.print(f"[red]cannot start[/] {escape(str(failure))}", soft_wrap=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def _check_web(settings: Settings) -> None:
    """The web view needs at least one moderator; say how to add one instead of serving a page nobody can open."""
    if not settings.web.moderators:
        err.print(
            "[red]web: no moderators[/]: add [web.moderators.NAME] with token_sha256 (from `groomguard web-token "
            "NAME`) to the config; see docs/web.md"
        )
        raise typer.Exit(1)


@app.command()
def web(config: ConfigOption = None, verbose: bool = False) -> None:
    """Serve the web case view (and every adapter the config enables) until stopped; see docs/web.md."""
    settings = _data_settings(config, None, must_exist=False)
    settings.web.enabled = True
    _check_web(settings)
    _setup_logging(settings, verbose)
    try:
        code = asyncio.run(_run_adapters(settings))
    except StartFailure as failure:
        err.print(f"[red]cannot start[/] {escape(str(failure))}", soft_wrap=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


@app.command("web-link")
def web_link(
    moderator: Annotated[str, typer.Argument(help="moderator name from [web.moderators]")],
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Print a one-time sign-in link for a moderator (single use, expires after web.link_minutes)."""
    from datetime import UTC, datetime, timedelta

    from groomguard.app.web import auth

    settings = _data_settings(config, db, must_exist=False)
    if moderator not in settings.web.moderators:
        known = ", ".join(sorted(settings.web.moderators)) or "none configured"
        err.print(
            f"[red]{escape(moderator)} is not a web moderator[/] (known: {escape(known)}); add [web.moderators.NAME]"
        )
        raise typer.Exit(1)
    token = auth.new_token()
    expires = datetime.now(UTC) + timedelta(minutes=settings.web.link_minutes)
    asyncio.run(_with_store(settings, lambda s: s.put_web_link(auth.digest(token), moderator, expires)))
    err.print(
        f"one-time sign-in link for {escape(moderator)}, valid until {expires:%Y-%m-%d %H:%M} UTC; send it privately:"
    )
    typer.echo(auth.link_url(settings.web, token))


@app.command("web-token")
def web_token(moderator: Annotated[str, typer.Argument(help="moderator name to add to [web.moderators]")]) -> None:
    """Make a sign-in token for a moderator and print the config lines that accept it (only its hash)."""
    import re

    from groomguard.app.web import auth
    from groomguard.config import MODERATOR_NAME

    if not re.match(MODERATOR_NAME, moderator):
        err.print("[red]moderator names are letters, digits, '.', '_' or '-' (1-64)[/]")
        raise typer.Exit(2)
    token = auth.new_token()
    err.print(f"token for {escape(moderator)} (give it to them privately; GroomGuard keeps only its hash):")
    typer.echo(token)
    err.print("add to the config:")
    err.print(f'[web.moderators.{moderator}]\ntoken_sha256 = "{auth.digest(token)}"', markup=False)


@app.command("check-config")
def check_config(file: Annotated[Path, typer.Argument(help="TOML config file to check")]) -> None:
    """Validate a config file and report every problem with its key and a fix hint."""
    settings = _load_or_exit(file, str(file))
    enabled = [name for name in type(settings.detectors).model_fields if settings.detector(name).enabled]
    console.print(f"[green]{file}: OK[/] — store {settings.store.path}, detectors: {', '.join(enabled)}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of GroomGuard events (the replay and webhook format)."""
    typer.echo(schema_text())


async def _with_store(settings: Settings, fn):  # type: ignore[no-untyped-def]
    from groomguard.store import open_store

    store = open_store(settings.store, process=False)  # a look-up or an erasure processes nothing
    await store.open()
    try:
        return await fn(store)
    finally:
        await store.close()


JsonOption = Annotated[bool, typer.Option("--json", help="print JSON on stdout instead of a table")]


async def _case_rows(settings: Settings, status: str | None, limit: int) -> list[dict[str, object]]:
    """Case summaries with risk now and peak at each community's clock, highest risk now first."""
    from groomguard.store import open_store
    from groomguard.workspace import case_queue, community_clocks

    store = open_store(settings.store)
    await store.open()
    try:
        clocks = await community_clocks(store)
        return await case_queue(store, settings.cases.half_life_hours, clocks, status=status, limit=limit)
    finally:
        await store.close()


@cases_app.command("list")
def cases_list(
    config: ConfigOption = None,
    db: DbOption = None,
    status: Annotated[str | None, typer.Option(help="open, escalated, confirmed, dismissed, banned")] = None,
    limit: int = 50,
    as_json: JsonOption = False,
) -> None:
    """List cases, highest risk now first (risk read at each community's latest event, with its peak)."""
    settings = _data_settings(config, db, must_exist=True)
    rows = asyncio.run(_case_rows(settings, status, limit))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print("no cases")
        return
    table = Table("id", "suspect", "community", "status", "risk now", "peak", "band", "updated")
    for row in rows:
        table.add_row(
            str(row["id"]),
            str(row["suspect"]),
            str(row["community"]),
            str(row["status"]),
            f"{row['risk_now']:.2f}",
            f"{row['peak']:.2f}",
            str(row["band"]),
            str(row["updated_at"])[:16],
        )
    console.print(table)


async def _case_detail(settings: Settings, case_id: int):  # type: ignore[no-untyped-def]
    from groomguard.store import open_store
    from groomguard.workspace import clock_for, community_clocks

    store = open_store(settings.store)
    await store.open()
    try:
        found = await store.get_case(case_id)
        if found is None:
            return None
        return found, clock_for(found[0], await community_clocks(store))
    finally:
        await store.close()


@cases_app.command("show")
def cases_show(
    case_id: Annotated[int, typer.Argument(help="case id")],
    config: ConfigOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one case: risk now and peak, reasons, evidence with times and children, and the history with notes."""
    from groomguard.app.sinks import print_card
    from groomguard.cases import CaseBook
    from groomguard.workspace import detail

    settings = _data_settings(config, db, must_exist=True)
    got = asyncio.run(_case_detail(settings, case_id))
    if got is None:
        err.print(f"[red]no case {case_id}[/]")
        raise typer.Exit(1)
    (case, findings, audit), now = got
    view = detail(case, findings, audit, now, settings.cases.half_life_hours)
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    card = CaseBook(settings.cases).render(case, now)
    console.print(f"[bold]case #{case.id}[/] {case.suspect} in {case.community} (as of {now:%Y-%m-%d %H:%M} UTC)")
    print_card(console, card, evidence_limit=settings.cases.max_evidence)
    console.print(f"{len(findings)} findings; children involved: {', '.join(case.children) or '-'}", soft_wrap=True)
    if view["history"]:
        console.print("history:")
    for entry in view["history"]:
        note = f" — note: {escape(entry['note'])}" if entry.get("note") else ""
        console.print(f"  {entry['at'][:19]} {escape(entry['by'])} {entry['action']}{note}", soft_wrap=True)


DECIDE_CHOICES = ("confirm", "dismiss", "escalate")


async def _decide_cli(settings: Settings, case_id: int, decision: str, by: str, note: str):  # type: ignore[no-untyped-def]
    from groomguard.events import Decision
    from groomguard.workspace import decide

    # No sinks and hold_actions: the card edit stays in the outbox for the running bot to post.
    engine = build_engine(settings, [], hold_actions=True)
    await engine.start()
    try:
        return await decide(engine, case_id, Decision(decision), f"cli:{by}", note)
    finally:
        await engine.stop()


@cases_app.command("decide")
def cases_decide(
    case_id: Annotated[int, typer.Argument(help="case id")],
    decision: Annotated[str, typer.Argument(help="confirm, dismiss or escalate")],
    by: Annotated[str, typer.Option("--by", help="who decides (your moderator name; it goes into the audit)")],
    note: Annotated[str, typer.Option("--note", help="why: kept with the decision in the case history")] = "",
    config: ConfigOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Confirm, dismiss or escalate a case, with the same effects as the card's buttons (audited, card edited).

    The card edit waits in the outbox until the bot that owns the card (Discord, Matrix) posts it. On
    SQLite run this while the bot is stopped, or decide on the platform; on PostgreSQL it is safe any time.
    """
    from groomguard.workspace import DecisionRefused

    if decision not in DECIDE_CHOICES:
        err.print(f"[red]unknown decision {escape(decision)!r}[/]: use one of {', '.join(DECIDE_CHOICES)}")
        raise typer.Exit(2)
    if not by.strip():
        err.print("[red]--by must name the moderator who decides[/]")
        raise typer.Exit(2)
    settings = _data_settings(config, db, must_exist=True)
    _setup_logging(settings, quiet=True)
    try:
        outcome = asyncio.run(_decide_cli(settings, case_id, decision, by.strip(), note))
    except DecisionRefused as refused:
        err.print(f"[red]not applied[/]: {escape(str(refused))}")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(
            json.dumps(
                {"case": outcome.case_id, "decision": decision, "before": outcome.before, "after": outcome.after}
            )
        )
        return
    console.print(f"case #{outcome.case_id}: {decision} by {by.strip()} (status {outcome.before} → {outcome.after})")


@app.command()
def forget(
    account: Annotated[str, typer.Argument(help="account id to erase")],
    community: Annotated[str | None, typer.Option(help="only this community")] = None,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Erase everything stored about one account and say what was removed, and from which database."""
    settings = _data_settings(config, db, must_exist=True)
    removed = asyncio.run(_with_store(settings, lambda s: s.forget(account, community)))
    where = _store_label(settings)
    if not removed:
        console.print(f"nothing stored about {account} in {where}", soft_wrap=True)
        return
    console.print(
        f"erased {account} from {where}: " + ", ".join(f"{n} {table}" for table, n in removed.items()), soft_wrap=True
    )


@app.command()
def doctor(
    config: ConfigOption = None,
    db: DbOption = None,
    webhook_url: Annotated[
        str | None,
        typer.Option(help="check this webhook URL live (what the Synapse module or platform posts to)"),
    ] = None,
    webhook_secret_file: Annotated[
        Path | None,
        typer.Option(help="sign the live check with this secret (the sender's); default: GroomGuard's own"),
    ] = None,
) -> None:
    """Check config, database, model file, platform settings and the webhook live; print what to fix (exit 1 on problems)."""
    from groomguard.app.doctor import FAIL, WARN, diagnose
    from groomguard.config import read_secret

    settings = _data_settings(config, db, must_exist=False)
    try:
        secret = read_secret(None, webhook_secret_file, "webhook_secret") if webhook_secret_file else None
    except ConfigError as error:
        err.print(f"[red]{escape(str(error.problems[0]))}[/]")
        raise typer.Exit(1) from None
    checks = diagnose(settings, live_url=webhook_url, live_secret=secret)
    marks = {FAIL: "[red]✖[/]", WARN: "[yellow]![/]"}
    for check in checks:
        console.print(f"{marks.get(check.status, '[green]✔[/]')} {check.area}: {escape(check.detail)}", soft_wrap=True)
        if check.fix and check.status in (FAIL, WARN):
            console.print(f"    fix: {escape(check.fix)}", soft_wrap=True)
    failed = sum(c.failed for c in checks)
    console.print(f"{failed} problem(s) to fix" if failed else "[green]all checks passed[/]")
    raise typer.Exit(1 if failed else 0)


@app.command()
def score(
    input: Annotated[Path, typer.Option("--input", "-i", help='JSON Lines of {"id": ..., "text": ...}')],
    output: Annotated[Path, typer.Option("--output", "-o", help="where to write id, score, label, stages")],
    threshold: Annotated[float | None, typer.Option(help="override the shipped threshold")] = None,
) -> None:
    """Score messages or conversation segments; languages no model covers are reported 'not scored'."""
    from groomguard.classifier import ModelError
    from groomguard.scoring import score_file

    if not input.is_file():
        err.print(f"[red]{input}: no such file[/]")
        raise typer.Exit(1)
    if not output.parent.is_dir():
        err.print(f"[red]{output}: folder {output.parent} does not exist; create it or choose another --output[/]")
        raise typer.Exit(1)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s", stream=sys.stderr)
    to_stdout = str(output) == "-"
    try:
        if to_stdout:
            # '-' is standard output, not a file named '-'; the report goes to stderr to keep stdout clean.
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                scored = Path(tmp) / "scores.jsonl"
                written = score_file(input, scored, threshold=threshold)
                sys.stdout.write(scored.read_text(encoding="utf-8"))
                sys.stdout.flush()
        else:
            written = score_file(input, output, threshold=threshold)
    except ModelError as error:
        err.print(f"[red]{error}[/]")
        raise typer.Exit(1) from None
    except OSError as error:
        err.print(f"[red]cannot write {output}: {error.strerror or error}[/]")
        raise typer.Exit(1) from None
    (err if to_stdout else console).print(f"scored {written} lines into {'stdout' if to_stdout else output}")


@app.command("eval")
def eval_cmd(
    input: Annotated[
        Path | None, typer.Option("--input", "-i", help='JSON Lines of {"text": ..., "label": 0|1}')
    ] = None,
    corpus: Annotated[
        Path | None,
        typer.Option(
            "--corpus",
            help="the shared data folder (pj_transcripts.jsonl, negatives/): replay conversations the way the "
            "detector reads them and report notice/alert shares per source",
        ),
    ] = None,
    threshold: Annotated[float | None, typer.Option(help="override the shipped threshold")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Measure the shipped model: window metrics on a labelled file, or the product view on the corpora."""
    from groomguard.classifier import ModelError
    from groomguard.scoring import evaluate_file

    if (input is None) == (corpus is None):
        err.print("[red]give exactly one of --input FILE (labelled lines) or --corpus DIR (the shared data)[/]")
        raise typer.Exit(2)
    if corpus is not None:
        _eval_corpus(corpus, as_json)
        return
    assert input is not None
    if not input.is_file():
        err.print(f"[red]{input}: no such file[/]")
        raise typer.Exit(1)
    try:
        report = evaluate_file(input, threshold=threshold)
    except ModelError as error:
        err.print(f"[red]{error}[/]")
        raise typer.Exit(1) from None
    typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.format())


def _eval_corpus(corpus: Path, as_json: bool) -> None:
    """`eval --corpus`: held-back splits of the fit sources, the evaluation-only corpora and the probes."""
    from groomguard.classifier import ModelError, load_default_classifier
    from groomguard.corpora import load_chitchat, load_negatives, load_pj, load_probes, load_synthetic, split_of
    from groomguard.evaluation import ProductThresholds, format_report, product_report
    from groomguard.language_routing import default_router

    if not (corpus / "pj_transcripts.jsonl").is_file() or not (corpus / "negatives").is_dir():
        err.print(f"[red]{corpus}: expected pj_transcripts.jsonl and negatives/ (the shared data folder)[/]")
        raise typer.Exit(1)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s", stream=sys.stderr)
    try:
        model = load_default_classifier()
    except ModelError as error:
        err.print(f"[red]{error}[/]")
        raise typer.Exit(1) from None
    fit = load_pj(corpus / "pj_transcripts.jsonl") + load_negatives(corpus, "sms") + load_negatives(corpus, "irc")
    try:
        fit += load_chitchat()
    except ImportError:
        err.print("chitchat-dataset is not installed (pip install 'groomguard[train]'): skipping that source")
    fit += load_synthetic()
    held_back = [c for c in fit if split_of(c.group or c.id) == "test"]
    eval_only = load_negatives(corpus, "nps") + load_negatives(corpus, "conda")
    thresholds = ProductThresholds(notice=model.info.notice_threshold, moderator=model.info.moderator_threshold)
    report = product_report(
        model.classify_folded,
        model.informative,
        thresholds,
        model.base_rate,
        held_back,
        eval_only,
        load_probes(),
        default_router(),
    )
    report["thresholds"] = {"notice": thresholds.notice, "moderator": thresholds.moderator, "model": model.info.version}
    typer.echo(json.dumps(report, indent=2) if as_json else format_report(report))


@app.command()
def version() -> None:
    """Print the version."""
    from importlib.metadata import version as pkg_version

    typer.echo(pkg_version("groomguard"))
