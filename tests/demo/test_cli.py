from __future__ import annotations

import json
from pathlib import Path

from cityops import migrate
from tests.cliutil import invoke_cli, run_cli


def test_demo_data_builds_exports_and_refuses_to_build_twice(tmp_db: str, tmp_path: Path) -> None:
    env = {"CITYOPS_DATABASE_URL": tmp_db}
    out = tmp_path / "export"
    small = ("--villages-per-town", "2", "--grids-per-village", "1")
    first = invoke_cli("demo-data", *small, "--export", str(out), env=env)
    assert first.returncode == 0, first.stderr
    assert "201 regions" in first.stdout  # 1 district + 40 towns + 80 villages + 80 grids
    regions = json.loads((out / "regions.geojson").read_text(encoding="utf-8"))
    assert len(regions["features"]) == 201 and regions["metadata"]["synthetic_geometry"] is True

    again = invoke_cli("demo-data", env=env)
    assert again.returncode == 2 and "already loaded" in again.stderr

    current = invoke_cli("db", "current", env=env)
    assert current.returncode == 0 and f"database: {migrate.head()}" in current.stdout


def test_unreachable_database_is_a_clear_error() -> None:
    result = run_cli(
        "db", "upgrade", env={"CITYOPS_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"}
    )
    assert result.returncode == 2
    assert "cannot reach the database" in result.stderr and "Traceback" not in result.stderr
