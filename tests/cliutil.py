"""Run the ``cityops`` command line in a subprocess with a clean CITYOPS_ environment."""

from __future__ import annotations

import os
import subprocess
import sys


def run_cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOPS_")}
    full_env |= {"COLUMNS": "200"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "cityops.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=full_env,
        timeout=300,
    )
