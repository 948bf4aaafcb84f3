"""One validated settings object (prefix ``CITYOPS_``) for every process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DB_PATH = Path("var") / "cityops.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYOPS_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///./{DEFAULT_DB_PATH.as_posix()}",
        description="SQLAlchemy URL: sqlite:///path or postgresql://user@host:5432/db",
    )
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8000, ge=1, le=65535)
    timezone: str = Field(default="Asia/Shanghai", description="display time zone")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    db_pool_size: int = Field(default=10, ge=1, le=200)
    district_code: str = Field(default="500154", pattern=r"^\d{6}$")
    # Sessions, tokens and log-in throttling.
    cookie_secure: bool = Field(default=False, description="send cookies over HTTPS only")
    session_idle_minutes: int = Field(default=30, ge=1, le=1440)
    session_absolute_hours: int = Field(default=12, ge=1, le=168)
    access_token_minutes: int = Field(default=15, ge=1, le=1440)
    refresh_token_days: int = Field(default=30, ge=1, le=365)
    password_hash_memory_kib: int = Field(default=65536, ge=1024, le=1048576)
    password_hash_time_cost: int = Field(default=3, ge=1, le=20)
    login_slowdown_after: int = Field(default=5, ge=1, le=100)
    login_lock_after: int = Field(default=10, ge=2, le=1000)
    login_lock_minutes: int = Field(default=30, ge=1, le=10080)
    ip_slowdown_after: int = Field(default=20, ge=1, le=10000)
    ip_lock_after: int = Field(default=100, ge=2, le=100000)
    demo: bool = Field(default=False, description="demo mode: demo accounts exist")
    # Event center.
    attachments_dir: Path = Field(default=Path("var") / "attachments")
    attachment_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=200 * 1024 * 1024)
    clock_ladder: tuple[float, float, float, float] = Field(
        default=(0.8, 1.0, 1.5, 2.0), description="warn, urge, supervise, escalate (× time limit)"
    )
    feedback_days: int = Field(default=7, ge=1, le=90)
    duplicate_radius_m: float = Field(default=200.0, gt=0, le=5000)
    duplicate_window_h: float = Field(default=72.0, gt=0, le=720)
    notify_sms_url: str | None = Field(default=None, description="SMS gateway (JSON POST)")
    notify_sms_token: str = ""
    notify_webhook_url: str | None = Field(
        default=None, description="work-app webhook (WeCom / 渝快政 group robot), JSON POST"
    )
    notify_webhook_token: str = ""
    notify_smtp_host: str | None = Field(default=None, description="mail server for e-mail")
    notify_smtp_port: int = Field(default=587, ge=1, le=65535)
    notify_smtp_starttls: bool = True
    notify_smtp_user: str = ""
    notify_smtp_password: str = ""
    notify_smtp_from: str = "cityops@localhost"
    worker_interval_s: float = Field(default=5.0, gt=0, le=3600)
    evaluation_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "closure_rate": 0.25,
            "on_time_closure_rate": 0.25,
            "timely_accept_rate": 0.15,
            "satisfaction_rate": 0.15,
            "rework_rate": -0.10,
            "overdue_rate": -0.10,
        },
        description="JSON: indicator → weight for the composite score",
    )
    # Telemetry and alarms.
    telemetry_batch_max: int = Field(default=10_000, ge=1, le=100_000)
    telemetry_future_tolerance_s: int = Field(
        default=300, ge=0, le=86_400, description="reject readings stamped further ahead"
    )
    telemetry_retention_months: int = Field(
        default=13, ge=1, le=240, description="readings older than this are dropped"
    )
    telemetry_fold_interval_s: float = Field(
        default=1.0,
        ge=0,
        le=3600,
        description="seconds between folds of new readings into roll-ups and latest values "
        "in cityops serve / ingest (0: only the worker and ingest(fold=True) fold)",
    )
    mqtt_url: str = Field(default="mqtt://127.0.0.1:1883", description="broker for cityops ingest")
    mqtt_topic: str = "cityops/+/telemetry"
    mqtt_share_group: str = Field(default="cityops", pattern=r"^[A-Za-z0-9_-]+$")
    mqtt_batch: int = Field(
        default=20, ge=1, le=65_535, description="messages per commit (≤ broker max_inflight)"
    )
    # Warnings (CAP 1.2) and the landslide analytics.
    public_url: str = Field(
        default="http://127.0.0.1:8000", description="base address in CAP and Atom links"
    )
    cap_sender: str = Field(default="cityops@kaizhou.gov.cn", min_length=1, max_length=100)
    cap_sender_name: str = Field(default="开州区城市运行和治理中心", min_length=1, max_length=100)
    warning_expiry_h: int = Field(default=24, ge=1, le=720, description="CAP expires after")
    warning_auto_propose: Literal["none", "blue", "yellow", "orange", "red"] = Field(
        default="yellow", description="analytics propose a warning at this level or above"
    )
    warning_window_days: int = Field(default=30, ge=2, le=365, description="analytics look back")
    # Live updates (server-sent events).
    live_max_streams: int = Field(
        default=500, ge=1, le=100_000, description="open event streams per web process"
    )
    live_poll_s: float = Field(
        default=5.0, gt=0, le=300, description="streams re-read the feed this often regardless"
    )
    # Single sign-on (OpenID Connect); off unless an issuer is set.
    oidc_issuer: str | None = None
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_scopes: str = "openid profile"
    oidc_username_claim: str = "preferred_username"
    oidc_name_claim: str = "name"
    oidc_roles_claim: str = "cityops_roles"
    oidc_unit_claim: str = "cityops_unit"
    oidc_region_claim: str = "cityops_region"
    oidc_role_map: dict[str, str] = Field(
        default_factory=dict, description="JSON: identity-platform role → CityOps role"
    )

    @field_validator("database_url")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in {"sqlite", "postgresql", "postgresql+psycopg", "postgres"}:
            raise ValueError(
                "must start with sqlite:/// or postgresql:// (other databases are not supported)"
            )
        return normalise_database_url(value)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for every PostgreSQL URL, whatever spelling the operator chose."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class SettingsError(Exception):
    """A bad setting: the message names the environment variable to fix."""


def describe_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "?"
        lines.append(f"CITYOPS_{field.upper()}: {err['msg']}")
    return "\n".join(lines)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None
