"""The docs tell the truth: every environment variable the package reads is in the README's
table (and nothing else is), every command-line option has help text, the examples in
``remove --help`` parse, the limits the docs quote are the code's, and the shell completion
the README documents works."""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from cleancut.cli import cli
from cleancut.config import DEFAULT_MAX_PIXELS
from cleancut.urls import UrlPolicy

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "cleancut"
README = (REPO / "README.md").read_text(encoding="utf-8")
SERVER_DOC = (REPO / "docs" / "server.md").read_text(encoding="utf-8")
VARIABLE = re.compile(r"CLEANCUT_[A-Z0-9_]*[A-Z0-9]")


def variables_read_in(source: str) -> set[str]:
    """``CLEANCUT_*`` names the code reads: string constants that are exactly such a name
    (``env.get("CLEANCUT_OFFLINE")``, ``("CLEANCUT_URL_TIMEOUT", "timeout", float)``), not
    the names quoted inside messages and docstrings."""
    return {
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and VARIABLE.fullmatch(node.value)
    }


def readme_table() -> dict[str, str]:
    """The README's environment table: variable → its row."""
    rows = re.findall(r"^\| `(CLEANCUT_[A-Z0-9_]+)` \|(.*)$", README, flags=re.MULTILINE)
    return dict(rows)


def test_the_scan_sees_reads_and_skips_messages() -> None:
    code = 'env.get("CLEANCUT_A")\nx = ("CLEANCUT_B_C", 1)\ny = "set CLEANCUT_D=1"\n"""CLEANCUT_E"""\n'
    # a docstring is a constant too, but one that is exactly a name is no prose
    assert variables_read_in(code) == {"CLEANCUT_A", "CLEANCUT_B_C", "CLEANCUT_E"}


def test_every_variable_read_in_src_is_in_the_readme_table_and_no_other() -> None:
    read: set[str] = set()
    for path in sorted(SRC.rglob("*.py")):
        read |= variables_read_in(path.read_text(encoding="utf-8"))
    assert {"CLEANCUT_CACHE_DIR", "CLEANCUT_URL_TIMEOUT"} <= read  # the scan finds them
    table = readme_table()
    assert sorted(read - table.keys()) == [], "read in src/ but missing from README's table"
    assert sorted(table.keys() - read) == [], "in README's table but read nowhere in src/"


def test_the_readme_table_quotes_the_code_s_defaults() -> None:
    table = readme_table()
    policy = UrlPolicy()
    assert str(policy.max_bytes) in table["CLEANCUT_URL_MAX_BYTES"]
    assert f"default {policy.timeout:g}" in table["CLEANCUT_URL_TIMEOUT"]
    assert f"default {DEFAULT_MAX_PIXELS:,}" in table["CLEANCUT_MAX_PIXELS"]


def test_the_server_and_cli_pixel_limits_are_stated_as_they_are() -> None:
    pytest.importorskip("fastapi")
    from cleancut.server.settings import DEFAULT_SERVER_MAX_PIXELS

    for text in (README, SERVER_DOC):
        assert f"{DEFAULT_SERVER_MAX_PIXELS:,}" in text or str(DEFAULT_SERVER_MAX_PIXELS) in text
        assert f"{DEFAULT_MAX_PIXELS:,}" in text
    serve = cli.commands["serve"]
    (option,) = (p for p in serve.params if p.name == "max_pixels")
    assert option.default == DEFAULT_SERVER_MAX_PIXELS
    assert f"{DEFAULT_MAX_PIXELS:,}" in (option.help or "")


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name, command in sorted(group.commands.items()):
        out.append((f"{prefix}{name}", command))
        if isinstance(command, click.Group):
            out += _commands(command, f"{prefix}{name} ")
    return out


def test_every_option_of_every_command_has_help_text() -> None:
    commands = [("cleancut", cli), *_commands(cli)]
    assert {"remove", "serve", "info", "models fetch"} <= {name for name, _ in commands}
    missing = [
        f"{name} {'/'.join(p.opts)}"
        for name, command in commands
        for p in command.params
        if isinstance(p, click.Option) and not (p.help or "").strip()
    ]
    assert missing == []


def test_remove_help_has_examples_and_each_one_parses() -> None:
    remove = cli.commands["remove"]
    text = remove.get_help(click.Context(remove, info_name="remove"))
    examples = [line.strip() for line in text.split("Examples:", 1)[1].splitlines() if line.strip()]
    assert len(examples) >= 8
    for line in examples:
        argv = shlex.split(line.split("   ")[0])  # the command, without its note
        assert argv[0] == "cleancut"
        argv = [a for i, a in enumerate(argv[1:]) if a not in "<>" and argv[i] not in ("<", ">")]
        # Parsing alone (no run): every flag exists and takes the value it is given. The
        # group's own -v/-vv come first; the rest is the default command's.
        while argv and re.fullmatch(r"-v+", argv[0]):
            argv = argv[1:]
        assert argv and argv[0] not in cli.commands, line
        remove.make_context("remove", list(argv))


def test_readme_documents_health_checks_completion_and_the_test_duration() -> None:
    for route in ("/healthz", "/readyz"):
        assert f"`GET {route}`" in README and route in SERVER_DOC
    assert "_CLEANCUT_COMPLETE=bash_source cleancut" in README
    assert "about 15 min on 2 cores" in README


def test_the_documented_shell_completion_works() -> None:
    """The README's `_CLEANCUT_COMPLETE=bash_source cleancut` and what the script it prints
    asks for: `cleancut mo<TAB>` → models, `cleancut remove --ty<TAB>` → --type."""
    base = [sys.executable, "-m", "cleancut"]
    env = {**os.environ, "_CLEANCUT_COMPLETE": "bash_source"}
    script = subprocess.run(base, env=env, capture_output=True, text=True, timeout=120)
    assert script.returncode == 0 and "_cleancut_completion()" in script.stdout
    for words, cword, want in (
        ("cleancut mo", "1", "plain,models"),
        ("cleancut remove --ty", "2", "plain,--type"),
    ):
        env = {**os.environ, "_CLEANCUT_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": cword}
        got = subprocess.run(base, env=env, capture_output=True, text=True, timeout=120)
        assert got.returncode == 0 and want in got.stdout.splitlines(), got.stdout
