from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def run(env_db: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOPS_")}
    env |= {"CITYOPS_DATABASE_URL": env_db, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "cityops.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_demo_data_builds_exports_and_refuses_to_build_twice(tmp_db: str, tmp_path: Path) -> None:
    out = tmp_path / "export"
    first = run(
        tmp_db,
        "demo-data",
        "--villages-per-town",
        "2",
        "--grids-per-village",
        "1",
        "--export",
        str(out),
    )
    assert first.returncode == 0, first.stderr
    assert "201 regions" in first.stdout  # 1 district + 40 towns + 80 villages + 80 grids
    regions = json.loads((out / "regions.geojson").read_text(encoding="utf-8"))
    assert len(regions["features"]) == 201 and regions["metadata"]["synthetic_geometry"] is True

    again = run(tmp_db, "demo-data")
    assert again.returncode == 2 and "already loaded" in again.stderr

    current = run(tmp_db, "db", "current")
    assert current.returncode == 0 and "20261129_0001" in current.stdout


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    result = run("postgresql://nobody@127.0.0.1:1/none", "db", "upgrade")
    assert result.returncode == 2
    assert "cannot reach the database" in result.stderr and "Traceback" not in result.stderr
