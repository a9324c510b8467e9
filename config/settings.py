"""Typed settings (DESIGN §6).

Every value comes from an environment variable with the prefix ``HOTLINE_``; routing lists may
also come from the TOML file named by ``HOTLINE_CONFIG`` (environment wins). A wrong or missing
value raises :class:`ConfigError` whose message is one line naming the variable.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "HOTLINE_"
_NUMBER = re.compile(r"^[0-9A-Za-z*#+_-]{1,40}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")  # S3 bucket naming rules
_S3_REQUIRED = ("s3_endpoint", "s3_bucket", "s3_access_key", "s3_secret_key")


class ConfigError(Exception):
    """A setting is wrong or missing; the message names it in one line."""


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _split_mapping(value: Any) -> Any:
    if isinstance(value, str):
        mapping: dict[str, str] = {}
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            number, sep, code = part.partition("=")
            if not sep or not number.strip() or not code.strip():
                raise ValueError(f"expected number=SMOCODE, got {part!r}")
            mapping[number.strip()] = code.strip()
        return mapping
    return value


class Settings(BaseSettings):
    """All settings of the service; field names are the variable names without the prefix."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", case_sensitive=False)

    ami_host: str | None = None
    ami_port: int = Field(5038, ge=1, le=65535)
    ami_username: str = "journal"
    ami_secret: SecretStr = SecretStr("")
    ami_ping_interval_s: float = Field(10.0, gt=0)
    ami_ping_timeout_s: float = Field(5.0, gt=0)
    ami_idle_timeout_s: float = Field(60.0, gt=0)
    ami_backoff_max_s: float = Field(30.0, gt=0)
    pbx_id: str = Field("pbx1", min_length=1, max_length=40)

    hotline_numbers: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["88007070561"])
    l2_targets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    smo_lines: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    smo_names: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    dial_prefixes: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["9"])

    database_url: str = "sqlite+aiosqlite:///var/hotline.sqlite3"
    # How notifications and control messages travel: ``local`` (one service instance) or
    # ``postgresql`` (several instances on one PostgreSQL: LISTEN/NOTIFY, one elected ingester
    # per PBX; needs a PostgreSQL DATABASE_URL).
    bus: Literal["local", "postgresql"] = "local"
    # Seconds between a standby instance's tries to become its PBX's ingester.
    leader_retry_s: float = Field(1.0, gt=0, le=60)
    recordings_dir: Path = Path("var/recordings")
    recordings_pbx_dir: str = "/var/spool/asterisk/monitor"
    recordings_keep_days: int = Field(1825, ge=1)
    recordings_missing_after_s: float = Field(120.0, gt=0)
    # Threads that send recording files to clients (each download holds one while it runs).
    recordings_send_threads: int = Field(64, ge=1, le=1024)
    # Where the service reads recordings: RECORDINGS_DIR, or an S3-compatible store (MinIO).
    recordings_storage: Literal["local", "s3"] = "local"
    s3_endpoint: str | None = None
    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_region: str = Field("us-east-1", min_length=1)
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None

    # CEL backfill (calls that started and ended while the AMI link was down): the SQLAlchemy
    # URL of the database Asterisk's cel_pgsql / cel_sqlite3_custom write to; unset = off.
    cel_url: str | None = None
    # [schema.]table: a plain SQL name, no quoting needed.
    cel_table: str = Field("cel", pattern=r"^[A-Za-z_]\w{0,62}(\.[A-Za-z_]\w{0,62})?$")
    cel_interval_s: float = Field(300.0, gt=0)
    # The first run (no high-water mark yet) reads this far back.
    cel_lookback_h: float = Field(24.0, gt=0)
    # CEL eventtime is the PBX's local wall time, without a zone.
    pbx_timezone: str = "UTC"

    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    # A client must send a request's headers (and an API body) within this many seconds of
    # connecting or of its previous response (slow-loris); also the keep-alive idle limit.
    http_read_timeout_s: float = Field(30.0, gt=0)
    # Mark the session cookies Secure: set it when the service is reached over HTTPS (behind a
    # TLS proxy). A connection that is TLS itself gets Secure cookies anyway.
    cookie_secure: bool = False
    session_hours: float = Field(12.0, gt=0)
    # How long a resolved session token is trusted from memory (0 = ask the database always).
    session_cache_s: float = Field(10.0, ge=0)
    # Failed sign-ins one client address may make within SIGNIN_SOURCE_WINDOW_S before it is
    # answered 429 (the fund's operators share one NAT address: keep it generous).
    signin_failures_per_source: int = Field(100, ge=1)
    signin_source_window_s: float = Field(300.0, gt=0)
    # Reverse proxies whose X-Forwarded-For names the client (addresses or networks); empty:
    # the header is ignored and the peer address is the client.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    callback_due_hours: float = Field(8.0, gt=0)
    # The fund's name on every sheet of the analytical reports (regulation §37-38).
    fund_name: str = Field("ТФОМС", min_length=1, max_length=300)
    # Journal workflow: working day for call-backs, click-to-call dialplan, report time zone.
    local_timezone: str = "Europe/Moscow"
    workday_end_hour: int = Field(18, ge=1, le=24)
    # Missed calls: call-back attempts before giving up, and hours from the missed call by
    # which it must be called back (later it is overdue for the administrator).
    missed_callback_attempts: int = Field(3, ge=1, le=20)
    missed_callback_hours: float = Field(2.0, gt=0, le=24 * 31)
    callback_context: str = "from-operators"
    callback_dial_prefix: str = "8"
    log_level: str = "info"
    log_json: bool = False
    event_buffer_size: int = Field(10000, ge=10)
    spill_dir: Path = Path("var/spill")

    _split_lists = field_validator(
        "hotline_numbers", "l2_targets", "dial_prefixes", "trusted_proxies", mode="before"
    )(_split_list)
    _split_maps = field_validator("smo_lines", "smo_names", mode="before")(_split_mapping)

    @field_validator("hotline_numbers", "l2_targets", "smo_lines")
    @classmethod
    def _numbers_are_dialable(cls, value: Any) -> Any:
        numbers = value.keys() if isinstance(value, dict) else value
        for number in numbers:
            if not _NUMBER.match(number):
                raise ValueError(f"{number!r} is not a phone number or extension")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("use debug, info, warning or error")
        return value.lower()

    @field_validator("s3_endpoint")
    @classmethod
    def _endpoint_is_a_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname \
                or parts.path not in ("", "/") or parts.query or "@" in parts.netloc:
            raise ValueError("use http(s)://HOST[:PORT], e.g. http://minio:9000")
        return value

    @field_validator("s3_bucket")
    @classmethod
    def _bucket_name(cls, value: str | None) -> str | None:
        if value is not None and not _BUCKET.match(value):
            raise ValueError("3-63 lower-case letters, digits, dots and hyphens")
        return value

    @field_validator("s3_prefix")
    @classmethod
    def _plain_prefix(cls, value: str) -> str:
        parts = value.strip("/").split("/")
        if value.strip("/") and ("\\" in value or any(p in ("", ".", "..") for p in parts)):
            raise ValueError("a folder inside the bucket such as monitor/ (no .., no \\)")
        return value

    @model_validator(mode="after")
    def _s3_complete(self) -> Settings:
        if self.recordings_storage == "s3":
            for name in _S3_REQUIRED:
                value = getattr(self, name)
                if isinstance(value, SecretStr):
                    value = value.get_secret_value()
                if not value:
                    raise ValueError(f"{name}: required when HOTLINE_RECORDINGS_STORAGE=s3")
        return self

    @field_validator("pbx_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (e.g. UTC, Europe/Moscow)") from exc
        return value

    @model_validator(mode="after")
    def _bus_needs_postgresql(self) -> Settings:
        if self.bus == "postgresql" and not self.database_url.startswith("postgresql"):
            raise ValueError("bus: postgresql needs a PostgreSQL HOTLINE_DATABASE_URL "
                             "(postgresql+asyncpg://USER@HOST/DB); use HOTLINE_BUS=local "
                             "with SQLite")
        return self

    @model_validator(mode="after")
    def _hotline_required(self) -> Settings:
        if not self.hotline_numbers:
            raise ValueError("hotline_numbers: at least one 8-800 number is required")
        return self

    def smo_for(self, number: str) -> str | None:
        """SMO code of an SMO line number, or None."""
        return self.smo_lines.get(number)


def _toml_values(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"HOTLINE_CONFIG: file {path} does not exist") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"HOTLINE_CONFIG: {path} is not valid TOML: {exc}") from exc
    values: dict[str, Any] = {}
    routing = data.get("routing", {})
    for key in ("hotline_numbers", "l2_targets", "dial_prefixes"):
        if key in routing:
            values[key] = [str(v) for v in routing[key]]
    if "smo_lines" in data:
        values["smo_lines"] = {str(k): str(v) for k, v in data["smo_lines"].items()}
    if "smo_names" in data:
        values["smo_names"] = {str(k): str(v) for k, v in data["smo_names"].items()}
    return values


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment (and the TOML routing file); raise ConfigError."""
    init: dict[str, Any] = {}
    config_file = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if config_file:
        for key, value in _toml_values(Path(config_file)).items():
            if f"{ENV_PREFIX}{key.upper()}" not in os.environ:
                init[key] = value
    init.update(overrides)
    try:
        return Settings(**init)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "settings"
        message = str(error["msg"]).removeprefix("Value error, ")
        if not error["loc"]:  # a model-level check names its field as "field: message"
            name, sep, rest = message.partition(": ")
            if sep and name in Settings.model_fields:
                field, message = name, rest
        raise ConfigError(f"{ENV_PREFIX}{field.upper()}: {message}") from None
