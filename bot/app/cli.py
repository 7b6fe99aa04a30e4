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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, cast

import typer
from groomguard.app.runtime import build_engine
from groomguard.app.sinks import JsonlSink, TerminalSink, alert_table
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


def _setup_logging(settings: Settings, verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else getattr(logging, settings.logging.level)
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

    sinks: list = [TerminalSink(console, show_updates=False)] if not quiet else []
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
    _setup_logging(settings)
    console.print(f"[bold]GroomGuard demo[/]: replaying {data.name} into {settings.store.path}")
    raise typer.Exit(asyncio.run(_replay(settings, data, None, quiet=False)))


@app.command("replay")
def replay_cmd(
    file: Annotated[str, typer.Argument(help="JSON Lines of events, or '-' for stdin")],
    config: ConfigOption = None,
    db: DbOption = None,
    out: Annotated[Path | None, typer.Option(help="also write every action as JSON Lines here")] = None,
    quiet: Annotated[bool, typer.Option(help="print only the summary")] = False,
) -> None:
    """Replay events from a JSON Lines file into the engine; bad lines are reported and skipped."""
    source: Path | str = file if file == "-" else Path(file)
    if isinstance(source, Path) and not source.is_file():
        err.print(f"[red]{source}: no such file[/]")
        raise typer.Exit(1)
    settings = _data_settings(config, db, must_exist=False)
    _setup_logging(settings)
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
        section = {"webhook": settings.webhook, "metrics": settings.metrics}.get(part)
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
            if not adapters:
                stop.set()
        await stop.wait()
    finally:
        if follower is not None:
            await follower.stop()
        for adapter in reversed(started):
            await adapter.stop()
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
        settings.webhook.enabled or settings.discord.enabled or settings.matrix.enabled
    ):
        err.print(
            "[red]nothing to run[/]: enable [webhook], [discord] or [matrix], or set [replay] path, in the config"
        )
        raise typer.Exit(1)
    try:
        code = asyncio.run(_run_adapters(settings))
    except StartFailure as failure:
        err.print(f"[red]cannot start[/] {escape(str(failure))}", soft_wrap=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


@app.command("check-config")
def check_config(file: Annotated[Path, typer.Argument(help="TOML config file to check")]) -> None:
    """Validate a config file and report every problem with its key and a fix hint."""
    settings = _load_or_exit(file, str(file))
    enabled = [
        name for name in type(settings.detectors).model_fields if getattr(settings.detector(name), "enabled", True)
    ]
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


@cases_app.command("list")
def cases_list(
    config: ConfigOption = None,
    db: DbOption = None,
    status: Annotated[str | None, typer.Option(help="open, escalated, confirmed, dismissed, banned")] = None,
    limit: int = 50,
) -> None:
    """List cases, highest risk first."""
    settings = _data_settings(config, db, must_exist=True)
    rows = asyncio.run(_with_store(settings, lambda s: s.list_cases(status, limit)))
    if not rows:
        console.print("no cases")
        return
    table = Table("id", "suspect", "community", "status", "risk", "opened", "updated")
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["suspect"],
            row["community"],
            row["status"],
            f"{row['risk']:.2f}",
            row["opened_at"][:16],
            row["updated_at"][:16],
        )
    console.print(table)


@cases_app.command("show")
def cases_show(
    case_id: Annotated[int, typer.Argument(help="case id")], config: ConfigOption = None, db: DbOption = None
) -> None:
    """Show one case: reasons, evidence, findings and the audit trail."""
    from groomguard.cases import CaseBook

    settings = _data_settings(config, db, must_exist=True)
    found = asyncio.run(_with_store(settings, lambda s: s.get_case(case_id)))
    if found is None:
        err.print(f"[red]no case {case_id}[/]")
        raise typer.Exit(1)
    case, findings, audit = found
    card = CaseBook(settings.cases).render(case, case.updated_at)
    console.print(
        f"[bold]case #{case.id}[/] {case.suspect} in {case.community} · {case.status} · risk now {card.risk:.2f}"
    )
    console.print(alert_table(card))
    console.print(f"{len(findings)} findings; children involved: {', '.join(case.children) or '-'}")
    for entry in audit:
        console.print(f"  {entry['at'][:19]} {entry['actor']} {entry['action']} {entry['detail']}")


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
