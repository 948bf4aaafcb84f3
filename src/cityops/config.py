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
