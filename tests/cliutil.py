"""Run the ``cityops`` command line with a clean CITYOPS_ environment: in a subprocess
(``run_cli``), or in this process (``invoke_cli``) where a test is about what a command does
rather than about the process (exit on a bad setting without a traceback, signals, …) — the
same ``cityops.cli.main()``, without the second or so a new interpreter takes to start."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from click.testing import CliRunner

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


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


def invoke_cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Like ``run_cli``: ``cityops.cli.main()`` with ``args`` as its command line, standard
    input, output and error captured, os.environ without CITYOPS_ variables but ``env``, and the
    settings read afresh; the exit code is main's ``SystemExit``."""
    from cityops import cli
    from cityops.config import get_settings

    overrides: dict[str, str | None] = {k: None for k in os.environ if k.startswith("CITYOPS_")}
    overrides |= {"COLUMNS": "200"} | (env or {})
    argv = sys.argv
    code: int = 0
    with CliRunner().isolation(input=stdin, env=overrides) as (out, err, _mixed):
        get_settings.cache_clear()
        sys.argv = ["cityops", *args]
        try:
            cli.main()
        except SystemExit as exc:
            if isinstance(exc.code, str):  # sys.exit("message"): printed, status 1
                sys.stderr.write(exc.code + "\n")
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        finally:
            sys.argv = argv
            get_settings.cache_clear()
            sys.stdout.flush()
            sys.stderr.flush()
        stdout, stderr = out.getvalue(), err.getvalue()
    # A pipe is no terminal: like the subprocess, no colour whatever the console detected.
    return subprocess.CompletedProcess(
        ["cityops", *args],
        code,
        ANSI.sub("", stdout.decode("utf-8", "replace")),
        ANSI.sub("", stderr.decode("utf-8", "replace")),
    )
