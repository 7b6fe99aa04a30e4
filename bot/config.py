"""Typed settings: a TOML file plus GROOMGUARD_* environment overrides, validated at start-up."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from groomguard.detectors import REGISTRY
from groomguard.detectors.base import DetectorSettings
from groomguard.stages import STAGES as _STAGE_NAMES
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Section(BaseModel):
    """Base for config sections: unknown keys are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StoreSettings(Section):
    path: Path = Field(Path("groomguard.db"), description="SQLite database file (created if missing)")
    database_url: str | None = Field(
        None,
        repr=False,  # may carry a password
        description="postgresql://... to share state between instances; empty = SQLite at `path`",
    )
    message_retention_days: int = Field(
        30, ge=1, le=365, description="days message text is kept; longer helps review, shorter stores less"
    )
    event_retention_days: int = Field(90, ge=1, le=3650, description="days raw events are kept for replay and audit")
    partitions: int = Field(
        16,
        ge=1,
        le=1024,
        description="PostgreSQL only: communities hash to this many partitions, leased by the engine processes "
        "sharing the database (more = finer sharing; fixed once the database has events)",
    )
    writer_process: bool = Field(
        True,
        description="SQLite on Linux: commit batches from a child process of their own, so the SQLite writer "
        "never waits for this process's GIL (about 10 % more events/s); false keeps it on a thread here",
    )
    partition_lease_seconds: float = Field(
        8.0,
        ge=2,
        le=300,
        description="PostgreSQL only: a process's partitions are taken over this long after it stopped renewing "
        "(renewed every quarter of it); shorter = faster takeover, longer = tolerates longer stalls",
    )


class EngineSettings(Section):
    queue_size: int = Field(
        10_000, ge=10, le=1_000_000, description="events held in memory before producers wait (back-pressure)"
    )
    batch_size: int = Field(
        500, ge=1, le=10_000, description="events per transaction; bigger is faster, smaller acts sooner"
    )
    batch_wait_ms: int = Field(
        20, ge=0, le=5_000, description="how long to wait to fill a batch; lower = lower latency"
    )
    max_future_seconds: int = Field(
        300,
        ge=0,
        le=7 * 86_400,
        description="how far ahead of this machine's clock an event's time may be; later events are refused "
        "(counted as rejected, logged), so one wrong clock cannot make every stored event look expired",
    )
    gc_young_threshold: int = Field(
        50_000,
        ge=0,
        le=10_000_000,
        description="while the engine runs, Python's garbage collector looks at young objects only every this "
        "many net allocations (its default, 700, cost replay 12 % of its time); 0 leaves the collector as the "
        "host process set it",
    )
    switch_interval_us: int = Field(
        200,
        ge=0,
        le=100_000,
        description="while the engine runs, the longest a thread waits for Python's GIL behind a busy one "
        "(the default, 5,000, held a SQLite writer thread back: off Linux or with store.writer_process = false; "
        "with the writer process it measured within noise); 0 leaves it as the host process set it",
    )


class CaseSettings(Section):
    alert_threshold: float = Field(
        0.6, gt=0, le=1, description="case risk at which moderators get an alert; lower = more alerts"
    )
    half_life_hours: float = Field(168, gt=0, description="hours for a case's risk to halve without new findings")
    dismiss_factor: float = Field(0.3, ge=0, le=1, description="risk multiplier when a moderator dismisses a case")
    dismissed_threshold_step: float = Field(
        0.15, ge=0, le=0.5, description="extra risk needed to re-alert on a suspect per past dismissal (feedback)"
    )
    max_evidence: int = Field(25, ge=1, le=500, description="evidence items kept on an alert card")
    card_edit_interval_minutes: float = Field(
        10,
        ge=0,
        le=24 * 60,
        description="an alert card is edited at most this often (event time) unless its risk band or recommended "
        "action changes; lower = fresher cards, more noise (Discord also rate-limits edits)",
    )


class Helpline(Section):
    name: str = Field(description="helpline name shown to the child, e.g. Childline")
    contact: str = Field(description="phone number or short contact line")
    url: str = Field("", description="web address")


def _default_helplines() -> dict[str, Helpline]:
    """Free, confidential helplines for children, by region code (ISO 3166-1 alpha-2, lower case)."""
    return {
        "gb": Helpline(name="Childline", contact="0800 1111", url="https://www.childline.org.uk"),
        "ie": Helpline(name="Childline (ISPCC)", contact="1800 66 66 66", url="https://www.childline.ie"),
        "us": Helpline(name="Childhelp", contact="1-800-422-4453", url="https://www.childhelphotline.org"),
        "ca": Helpline(name="Kids Help Phone", contact="1-800-668-6868", url="https://kidshelpphone.ca"),
        "au": Helpline(name="Kids Helpline", contact="1800 55 1800", url="https://kidshelpline.com.au"),
        "de": Helpline(name="Nummer gegen Kummer", contact="116 111", url="https://www.nummergegenkummer.de"),
        "at": Helpline(name="Rat auf Draht", contact="147", url="https://www.rataufdraht.at"),
        "ch": Helpline(name="Pro Juventute", contact="147", url="https://www.147.ch"),
        "es": Helpline(name="Fundación ANAR", contact="900 20 20 10", url="https://www.anar.org"),
        "fr": Helpline(name="Allô Enfance en Danger", contact="119", url="https://www.allo119.gouv.fr"),
        "nl": Helpline(name="De Kindertelefoon", contact="0800-0432", url="https://www.kindertelefoon.nl"),
    }


#: Languages child notices are written in (bot/templates/child_notice*.toml).
NOTICE_LOCALES = ("en", "es", "de", "fr", "nl")


def _check_region(region: str, extra: dict[str, Helpline]) -> None:
    regions = sorted({*_default_helplines(), *extra})
    if region.lower() not in regions:
        raise ValueError(
            f"unknown region {region!r}; allowed: {', '.join(regions)} "
            f"(or add [notices.helplines.{region.lower()}] with name, contact and url)"
        )


def _check_locale(locale: str) -> None:
    if locale.lower() not in NOTICE_LOCALES:
        raise ValueError(f"unknown locale {locale!r}; allowed: {', '.join(NOTICE_LOCALES)}")


class CommunityNotices(Section):
    """Per-community overrides of the notice language and region (a Discord server, a Matrix community...)."""

    locale: str | None = Field(None, description="language of this community's child notices: en, es, de, fr or nl")
    region: str | None = Field(None, description="region code picking this community's helpline")


class NoticeSettings(Section):
    # helplines comes first: region, locale and communities are checked against it.
    helplines: dict[str, Helpline] = Field(
        default_factory=dict,
        description="helpline per region code; added to (or replacing) the built-in ones for gb, ie, us, ca, au, "
        "de, at, ch, es, fr, nl",
    )
    region: str = Field("gb", description="community's region; picks the helpline in child notices")
    locale: str = Field("en", description="language of child notices: en, es, de, fr or nl")
    communities: dict[str, CommunityNotices] = Field(
        default_factory=dict,
        description='community id → its own locale and region, e.g. {"1100000000000000001" = {locale = "de", region = "de"}}',
    )
    min_hours_between: float = Field(
        24, ge=0, description="hours before the same child is warned again about the same account"
    )
    max_per_child_per_day: int = Field(
        3,
        ge=1,
        le=20,
        description="notices one child may get in 24 hours, all accounts and escalations together (a hard cap)",
    )
    escalation_stages: list[str] = Field(
        default_factory=lambda: ["photos", "meeting"],
        description="grooming stages serious enough that a child is warned again inside min_hours_between, once "
        "per stage per window (still under max_per_child_per_day)",
    )

    @field_validator("helplines")
    @classmethod
    def _lower_regions(cls, value: dict[str, Helpline]) -> dict[str, Helpline]:
        return {k.lower(): v for k, v in value.items()}

    # An unknown region or locale is an error naming what is allowed, never a silent fallback to gb/en.
    @field_validator("region")
    @classmethod
    def _region(cls, value: str, info: ValidationInfo) -> str:
        _check_region(value, info.data.get("helplines", {}))
        return value.lower()

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        _check_locale(value)
        return value.lower()

    @field_validator("communities")
    @classmethod
    def _communities(cls, value: dict[str, CommunityNotices], info: ValidationInfo) -> dict[str, CommunityNotices]:
        for cid, own in value.items():
            try:
                if own.region is not None:
                    _check_region(own.region, info.data.get("helplines", {}))
                if own.locale is not None:
                    _check_locale(own.locale)
            except ValueError as error:
                raise ValueError(f"community {cid}: {error}") from None
        return value

    @field_validator("escalation_stages")
    @classmethod
    def _stages(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(_STAGE_NAMES))
        if unknown:
            raise ValueError(f"unknown stage(s) {', '.join(unknown)}; allowed: {', '.join(_STAGE_NAMES)}")
        return value

    def all_helplines(self) -> dict[str, Helpline]:
        return {**_default_helplines(), **self.helplines}

    def for_community(self, community: str) -> tuple[str, Helpline]:
        """(locale, helpline) for one community: its own override, else the section's defaults."""
        own = self.communities.get(community)
        locale = ((own.locale if own else None) or self.locale).lower()
        region = ((own.region if own else None) or self.region).lower()
        return locale, self.all_helplines()[region]

    def helpline(self) -> Helpline:
        return self.all_helplines()[self.region.lower()]


class ReplaySettings(Section):
    path: Path | None = Field(None, description="JSON Lines file to replay when `groomguard run` starts ('-' = stdin)")


class WebhookSettings(Section):
    enabled: bool = Field(False, description="accept events over HTTP")
    host: str = Field("127.0.0.1", description="bind address; keep loopback unless a proxy terminates TLS")
    port: int = Field(8787, ge=1, le=65535, description="TCP port")
    secret: SecretStr | None = Field(
        None, description="HMAC shared secret (prefer GROOMGUARD_WEBHOOK__SECRET or secret_file)"
    )
    secret_file: Path | None = Field(None, description="file holding the shared secret")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="largest request body accepted")
    max_skew_seconds: int = Field(300, ge=1, description="how old a signed timestamp may be (replay window)")
    rate_per_second: float = Field(
        200, gt=0, description="signed requests per second allowed per sender (the platform its events name)"
    )
    unauthenticated_per_second: float = Field(
        5,
        gt=0,
        description="requests per second per client address that fail the signature check before they are "
        "answered 429 cheaply; never limits correctly signed requests",
    )
    read_timeout_seconds: float = Field(
        10, gt=0, le=300, description="longest time to receive a whole request body; slower bodies get 408"
    )
    notice_url: str | None = Field(
        None,
        description="the platform's endpoint that shows a child GroomGuard's private notice; each ChildNotice is POSTed "
        "there as JSON, signed like incoming events (empty = notices only go to --out and the terminal)",
    )
    notice_platforms: list[str] = Field(
        default_factory=list,
        description="platforms whose notices go to notice_url; empty = every platform but discord and matrix, "
        "whose adapters deliver their own",
    )
    allow_moderator_events: bool = Field(
        False,
        description="accept moderator_decision and moderator-sourced age_declared events; only for a platform "
        "whose own moderation tool has already checked the moderator",
    )

    @field_validator("notice_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("notice_url must be an http:// or https:// URL")
        return value or None


class DiscordSettings(Section):
    enabled: bool = Field(False, description="run the Discord bot")
    token: SecretStr | None = Field(None, description="bot token (prefer GROOMGUARD_DISCORD__TOKEN or token_file)")
    token_file: Path | None = Field(None, description="file holding the bot token")
    guild_ids: list[int] = Field(default_factory=list, description="servers to protect")
    mod_channel_id: int | None = Field(
        None, description="private channel for alert cards, when GroomGuard protects one server (or as the default)"
    )
    mod_channels: dict[str, int] = Field(
        default_factory=dict,
        description='server id → that server\'s private mod channel id, e.g. {"1100..." = 1100...}; cases of a '
        "server only ever go to its own channel",
    )
    moderator_role_ids: list[int] = Field(default_factory=list, description="roles allowed to act on cases")
    age_roles: dict[str, str] = Field(
        default_factory=dict, description='role name → band, e.g. {"13-15" = "minor", "18+" = "adult"}'
    )
    region_roles: dict[str, str] = Field(default_factory=dict, description="role name → region tag")
    timeout_choices_minutes: list[int] = Field(
        default_factory=lambda: [60, 1440, 10080, 40320],
        description="durations offered by the Timeout control, in minutes (Discord's limit is 40320 = 28 days)",
    )
    ban_delete_message_hours: int = Field(
        0, ge=0, le=168, description="hours of the banned account's messages Discord deletes; 0 keeps the evidence"
    )

    @field_validator("mod_channels")
    @classmethod
    def _server_ids(cls, value: dict[str, int]) -> dict[str, int]:
        bad = sorted(k for k in value if not k.isdigit())
        if bad:
            raise ValueError(f"mod_channels keys must be server ids (digits); got {', '.join(bad)}")
        return value

    def mod_channel_for(self, guild_id: int) -> int | None:
        """The mod channel configured for one server: its own entry, else the single mod_channel_id."""
        return self.mod_channels.get(str(guild_id), self.mod_channel_id)

    @field_validator("age_roles")
    @classmethod
    def _known_bands(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted({band for band in value.values() if band not in {"minor", "adult", "unknown"}})
        if bad:
            raise ValueError(f"age bands must be minor, adult or unknown; got {', '.join(bad)}")
        return value

    @field_validator("timeout_choices_minutes")
    @classmethod
    def _timeout_range(cls, value: list[int]) -> list[int]:
        if any(not 1 <= m <= 40_320 for m in value):
            raise ValueError("each timeout must be 1 to 40320 minutes (Discord allows at most 28 days)")
        return value


class MatrixSettings(Section):
    enabled: bool = Field(False, description="run the Matrix bot")
    homeserver: str = Field("http://127.0.0.1:8008", description="homeserver base URL")
    user_id: str = Field("", description="the bot's Matrix id, e.g. @groomguard:example.org")
    access_token: SecretStr | None = Field(
        None, description="prefer GROOMGUARD_MATRIX__ACCESS_TOKEN or access_token_file"
    )
    access_token_file: Path | None = Field(None, description="file holding the access token")
    password: SecretStr | None = Field(None, description="used only when no access token is given")
    mod_room: str = Field("", description="room id of the private moderators' room")
    protected_rooms: list[str] = Field(default_factory=list, description="room or space ids to protect")
    minor_rooms: list[str] = Field(default_factory=list, description="room/space ids whose members are minors")
    adult_rooms: list[str] = Field(default_factory=list, description="room/space ids whose members are adults")
    moderator_power_level: int = Field(50, ge=0, le=100, description="power level in the mod room needed to act")
    invite_expiry_hours: float | None = Field(
        None,
        gt=0,
        description="no longer used (still accepted so older files load): detectors.rejections.expire_after_hours "
        "decides when an unanswered invite counts as refused",
    )
    community: str = Field(
        "",
        description="community id for events; empty = the bot's server name. Use the same value as the Synapse module's",
    )
    auto_join: bool = Field(
        True, description="accept invites, so people can DM the bot and communities can add it to rooms it should watch"
    )
    mute_minutes: int = Field(60, ge=1, le=40_320, description="how long 🔇 mutes a suspect in the protected rooms")
    sync_timeout_ms: int = Field(30_000, ge=0, le=120_000, description="long-poll time of each /sync request")
    max_backoff_s: float = Field(60, gt=0, le=3600, description="longest wait between reconnect attempts")
    timeline_limit: int = Field(
        200, ge=10, le=1000, description="events per room per sync; gaps beyond it are back-filled"
    )
    device_name: str = Field("groomguard", description="device name used when logging in with a password")


class MetricsSettings(Section):
    enabled: bool = Field(False, description="serve Prometheus metrics at http://host:port/metrics")
    host: str = Field("127.0.0.1", description="bind address; counts only, but keep it off the public internet")
    port: int = Field(9464, ge=1, le=65535, description="TCP port for the metrics endpoint")


#: A moderator's name on the web view: it is the actor in the audit trail ("web:<name>").
MODERATOR_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class WebModerator(Section):
    """One moderator who may sign in to the web case view."""

    token: SecretStr | None = Field(
        None,
        description="sign-in token (16+ characters); prefer token_sha256, so the config holds no usable token",
    )
    token_sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 (hex) of the sign-in token, as `groomguard web-token NAME` prints it",
    )
    communities: list[str] = Field(
        default_factory=list, description="communities whose cases this moderator sees; empty = every community"
    )

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("a sign-in token needs at least 16 characters (groomguard web-token makes one)")
        return value

    def token_digest(self) -> str | None:
        """The SHA-256 a presented token must hash to, or None when only one-time links sign this moderator in."""
        if self.token_sha256:
            return self.token_sha256
        if self.token is not None:
            import hashlib

            return hashlib.sha256(self.token.get_secret_value().encode()).hexdigest()
        return None

    def sees(self, community: str) -> bool:
        return not self.communities or community in self.communities


class WebSettings(Section):
    enabled: bool = Field(
        False, description="serve the web case view inside `groomguard run` too (`groomguard web` always serves it)"
    )
    host: str = Field("127.0.0.1", description="bind address; keep loopback unless a proxy terminates TLS")
    port: int = Field(8788, ge=1, le=65535, description="TCP port of the web case view")
    public_url: str = Field(
        "",
        description="the address moderators open (e.g. https://mod.example.org); alert cards link to cases there, "
        "and an https address marks the session cookie Secure. Empty = no links on cards",
    )
    session_minutes: float = Field(
        480, gt=0, le=7 * 24 * 60, description="how long a sign-in lasts; shorter is safer on shared computers"
    )
    link_minutes: float = Field(
        15, gt=0, le=24 * 60, description="how long a one-time sign-in link from `groomguard web-link` works"
    )
    moderators: dict[str, WebModerator] = Field(
        default_factory=dict, description="who may sign in: name → token (or token_sha256) and communities"
    )

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("public_url must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("moderators")
    @classmethod
    def _names(cls, value: dict[str, WebModerator]) -> dict[str, WebModerator]:
        import re

        bad = sorted(name for name in value if not re.match(MODERATOR_NAME, name))
        if bad:
            raise ValueError(f"moderator names are letters, digits, '.', '_' or '-' (1-64); got {', '.join(bad)}")
        return value

    def base_url(self) -> str:
        """Where the web view is reached: public_url, else the bound address."""
        return self.public_url or f"http://{self.host}:{self.port}"

    def case_url(self, case_id: int) -> str | None:
        """Link to a case in the web view for alert cards; None when no public_url is set."""
        return f"{self.public_url}/cases/{case_id}" if self.public_url else None


class LoggingSettings(Section):
    level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$", description="log level")
    json_logs: bool = Field(False, description="one JSON object per log line")


DetectorsSettings: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "DetectorsSettings",
    __base__=Section,
    **{
        spec.name: (spec.settings_model, Field(default_factory=spec.settings_model, description=spec.summary))
        for spec in REGISTRY
    },
)


class Settings(BaseSettings):
    """All of GroomGuard's settings; every section has documented defaults."""

    model_config = SettingsConfigDict(
        env_prefix="GROOMGUARD_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    store: StoreSettings = Field(default_factory=StoreSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    cases: CaseSettings = Field(default_factory=CaseSettings)
    notices: NoticeSettings = Field(default_factory=NoticeSettings)
    detectors: Annotated[Any, Field(default_factory=DetectorsSettings)]
    replay: ReplaySettings = Field(default_factory=ReplaySettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    discord: DiscordSettings = Field(default_factory=DiscordSettings)
    matrix: MatrixSettings = Field(default_factory=MatrixSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    web: WebSettings = Field(default_factory=WebSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file, so deployments can override one key without editing it.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    def detector(self, name: str) -> DetectorSettings:
        """The settings of the registry's detector `name`."""
        return getattr(self.detectors, name)  # type: ignore[no-any-return]


# pydantic needs the concrete model for the `detectors` field to validate nested TOML tables.
Settings.model_fields["detectors"].annotation = DetectorsSettings
Settings.model_rebuild(force=True)


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config file: where, what, and how to fix it."""

    key: str
    problem: str
    hint: str

    def __str__(self) -> str:
        return f"{self.key}: {self.problem} — {self.hint}"


class ConfigError(Exception):
    """The config cannot be used; `problems` lists every issue found, not just the first."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def _describe_field(loc: tuple[Any, ...]) -> str:
    """Walk the settings model along `loc` and return that field's description, if any."""
    model: Any = Settings
    description = ""
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return description
        info = fields[part]
        description = info.description or description
        model = info.annotation
    return description


def _hint(err: dict[str, Any]) -> str:
    loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        parent: Any = Settings
        for part in loc[:-1]:
            fields = getattr(parent, "model_fields", {})
            parent = fields[part].annotation if part in fields else None
        known = sorted(getattr(parent, "model_fields", {}) or [])
        return f"unknown key; remove it or use one of: {', '.join(known)}" if known else "unknown key; remove it"
    description = _describe_field(loc)
    ctx = err.get("ctx") or {}
    bounds = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in ctx.items() if k in {"ge", "gt", "le", "lt"})
    parts = [p for p in (description, f"allowed: {bounds}" if bounds else "") if p]
    return "; ".join(parts) or "see examples/groomguard.toml"


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Load settings from `path` (TOML) and the environment; raise ConfigError listing every problem."""
    if path is not None:
        if not path.is_file():
            raise ConfigError(
                [
                    ConfigProblem(
                        str(path), "file not found", "pass an existing TOML file, e.g. examples/groomguard.toml"
                    )
                ]
            )
        try:
            # Bytes, not read_text: universal newlines would turn a lone "\r" (invalid TOML) into "\n" here,
            # and the settings loader, which reads bytes, would then fail with a traceback.
            tomllib.loads(path.read_bytes().decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(
                [ConfigProblem(str(path), f"not valid TOML: {error}", "fix the syntax at that line")]
            ) from None
    file_settings = type("FileSettings", (Settings,), {"model_config": {**Settings.model_config, "toml_file": path}})
    try:
        return file_settings(**overrides)  # type: ignore[no-any-return]
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:  # a file changed since the check above
        raise ConfigError(
            [ConfigProblem(str(path), f"not valid TOML: {error}", "fix the syntax at that line")]
        ) from None
    except ValidationError as error:
        problems = [
            ConfigProblem(".".join(str(p) for p in e["loc"]), e["msg"], _hint(dict(e)))
            for e in error.errors(include_url=False)
        ]
        raise ConfigError(problems) from None


def read_secret(value: SecretStr | str | None, file: Path | None, name: str) -> str:
    """Return a secret from its value or file; the error names the setting, never the secret."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value:
        return value.strip()
    if file is not None:
        try:
            return file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ConfigError(
                [ConfigProblem(f"{name}_file", f"cannot read: {error.strerror}", "check the path and permissions")]
            ) from None
    raise ConfigError(
        [ConfigProblem(name, "missing", f"set GROOMGUARD_{name.upper().replace('.', '__')} or {name}_file")]
    )
