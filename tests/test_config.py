from __future__ import annotations

import pytest

from cityops.config import Settings, SettingsError, get_settings
from tests.cliutil import run_cli


def test_defaults_are_embedded_sqlite_and_shanghai() -> None:
    s = Settings(_env_file=None)
    assert s.database_url == "sqlite:///./var/cityops.db"
    assert s.timezone == "Asia/Shanghai" and s.port == 8000 and s.host == "127.0.0.1"


def test_postgres_urls_use_psycopg3() -> None:
    s = Settings(database_url="postgresql://cityops@db:5432/cityops")
    assert s.database_url == "postgresql+psycopg://cityops@db:5432/cityops"
    assert Settings(database_url="postgres://x@y/z").database_url.startswith(
        "postgresql+psycopg://"
    )


@pytest.mark.parametrize(
    ("var", "value", "fragment"),
    [
        ("CITYOPS_PORT", "eighty", "CITYOPS_PORT"),
        ("CITYOPS_PORT", "70000", "CITYOPS_PORT"),
        ("CITYOPS_DATABASE_URL", "mysql://root@localhost/x", "CITYOPS_DATABASE_URL"),
        ("CITYOPS_TIMEZONE", "Mars/Olympus", "CITYOPS_TIMEZONE"),
        ("CITYOPS_LOG_LEVEL", "loud", "CITYOPS_LOG_LEVEL"),
    ],
)
def test_bad_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(var, value)
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError) as info:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert fragment in str(info.value)


def test_bad_setting_stops_the_cli_with_exit_2_and_no_traceback() -> None:
    result = run_cli("db", "current", env={"CITYOPS_PORT": "not-a-port"})
    assert result.returncode == 2
    assert "CITYOPS_PORT" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_bad_database_url_stops_serve_before_binding() -> None:
    result = run_cli("serve", env={"CITYOPS_DATABASE_URL": "oracle://nope"})
    assert result.returncode == 2
    assert "CITYOPS_DATABASE_URL" in result.stderr
