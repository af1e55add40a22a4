"""Every command the README shows in a code block exists, with every flag it names: each
`ocrd ...` and `python -m ...` line runs with `--help` appended (so nothing is read, started or
written) and must succeed and list each of its flags. Other lines (sudo, cp, systemctl, make)
are the machine's own commands and are left alone."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
SEPARATORS = {"&&", "||", ";", "|"}


def readme_commands(text: str) -> list[list[str]]:
    """Commands in the README's code blocks: the words of each `ocrd` / `python -m` command
    (a console prompt and comments removed; `a && b` gives two)."""
    found = []
    for block in FENCE.findall(text):
        for line in block.splitlines():
            line = line.strip().removeprefix("$ ")
            try:
                words = shlex.split(line, comments=True)
            except ValueError:  # output shown in a console block, not a command
                continue
            command: list[str] = []
            for word in [*words, "&&"]:
                if word not in SEPARATORS:
                    command.append(word)
                    continue
                if _ours(command):
                    found.append(command)
                command = []
    return found


def _ours(words: list[str]) -> bool:
    if not words:
        return False
    program = Path(words[0]).name
    if program == "ocrd":
        return True
    return re.fullmatch(r"python3?(\.\d+)?", program) is not None and words[1:2] == ["-m"]


def _flags(words: list[str]) -> list[str]:
    return [w.split("=", 1)[0] for w in words if re.match(r"^--?[a-zA-Z]", w)]


COMMANDS = readme_commands((REPO / "README.md").read_text())


def test_the_readme_shows_commands() -> None:
    ocrd = [c for c in COMMANDS if Path(c[0]).name == "ocrd"]
    python = [c for c in COMMANDS if Path(c[0]).name != "ocrd"]
    assert len(ocrd) >= 15 and len(python) >= 5, COMMANDS  # the parser found them


def test_the_parser_takes_only_our_commands() -> None:
    sample = """```sh
sudo systemctl daemon-reload && sudo systemctl enable --now ocrd
cp scans/*.pdf inbox/     # not ours
.venv/bin/ocrd status --json    # ours, with a comment
python -m training evaluate && ocrd results --csv -o 'a b.csv'
```
"""
    assert readme_commands(sample) == [
        [".venv/bin/ocrd", "status", "--json"],
        ["python", "-m", "training", "evaluate"],
        ["ocrd", "results", "--csv", "-o", "a b.csv"],
    ]


@pytest.mark.parametrize("words", COMMANDS, ids=[" ".join(c)[:60] for c in COMMANDS])
def test_readme_command_exists_with_its_flags(words: list[str]) -> None:
    """`ocrd` lines run in-process (the console script itself is tested elsewhere), `python -m`
    lines as the README shows them, from the repository root."""
    if Path(words[0]).name == "ocrd":
        from typer.testing import CliRunner

        from ocrd.cli import app

        shown = CliRunner(env={"COLUMNS": "200"}).invoke(app, [*words[1:], "--help"])
        code, output, flags = shown.exit_code, shown.output, _flags(words[1:])
    else:
        env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO)}
        argv = [sys.executable, *words[1:], "--help"]
        ran = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
        code, output, flags = ran.returncode, ran.stdout + ran.stderr, _flags(words[3:])
    assert code == 0, f"{' '.join(words)}: {output[-2000:]}"
    for flag in flags:
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", output), (
            f"{' '.join(words)}: {flag} is not in its --help"
        )
