"""The README stays short and its commands stay runnable.

Every command line in README.md's bash blocks is checked without running it:
`make X` by a dry run (`make -n X`), `python tools/NAME.py ...` and
`fdsiamfc COMMAND ...` by the tool's `--help`, which must succeed and name every
`--flag` the README passes. A command
of any other kind fails the test unless ALLOWED lists it with the reason.
Relative links must point at files that exist.
"""
from __future__ import annotations

import functools
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from conftest import REPO

README = REPO / "README.md"
MAX_LINES = 200

# Commands the README may show that can be checked neither way: prefix -> reason.
ALLOWED: dict[str, str] = {
    "pip install": "installs the package; tests/test_commands.py checks the command and extras it declares",
}

PYTHONS = {"python", "python3", ".venv/bin/python", "$(BIN)/python"}
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```(?:bash|sh|shell)[ \t]*\n(.*?)^```", text, flags=re.S | re.M)


def _commands(text: str) -> list[str]:
    commands = []
    for block in _bash_blocks(text):
        joined = re.sub(r"\\\n", " ", block)  # line continuations
        for line in joined.splitlines():
            words = shlex.split(line, comments=True)
            while words and ENV_ASSIGNMENT.match(words[0]):
                words = words[1:]
            if words:
                commands.append(shlex.join(words))
    return commands


COMMANDS = _commands(README.read_text())


def _flags(words: list[str]) -> list[str]:
    flags = []
    for w in words:
        if w == "--":
            break
        if w.startswith("--"):
            flags.append(w.split("=", 1)[0])
    return flags


@functools.lru_cache(maxsize=None)
def _help(*tool: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *tool, "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_readme_is_short():
    n = len(README.read_text().splitlines())
    assert n <= MAX_LINES, f"README.md has {n} lines; at most {MAX_LINES} (the rest belongs in docs/)"


def test_readme_shows_commands():
    assert any(c.startswith("make quickstart") for c in COMMANDS)
    assert any(c.startswith("make test") for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command(command: str):
    words = shlex.split(command)
    allowed = [p for p in ALLOWED if command.startswith(p)]
    if allowed:
        assert ALLOWED[allowed[0]], "an allowed command needs a reason"
        return
    if words[0] == "make":
        if shutil.which("make") is None:
            pytest.skip("make is not installed")
        r = subprocess.run(["make", "-n", *words[1:]], cwd=REPO, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, f"`make -n {' '.join(words[1:])}` failed:\n{r.stderr}"
        return
    if words[0] in PYTHONS and len(words) > 1 and re.fullmatch(r"tools/\w+\.py", words[1]):
        assert (REPO / words[1]).is_file(), f"{words[1]} does not exist"
        r = _help(words[1])
        assert r.returncode == 0, f"`{words[1]} --help` failed:\n{r.stderr}"
        for flag in _flags(words[2:]):
            assert re.search(re.escape(flag) + r"(?![\w-])", r.stdout), \
                f"{words[1]} has no flag {flag} (README: {command})"
        return
    if words[0] == "fdsiamfc" and len(words) > 1:
        r = _help("-m", "siamfc.commands", words[1])
        assert r.returncode == 0, f"`fdsiamfc {words[1]} --help` failed:\n{r.stderr}"
        for flag in _flags(words[2:]):
            assert re.search(re.escape(flag) + r"(?![\w-])", r.stdout), \
                f"fdsiamfc {words[1]} has no flag {flag} (README: {command})"
        return
    pytest.fail(f"README command of an unchecked kind: {command!r}; check it here or add it to "
                f"ALLOWED with the reason")


def test_readme_links_exist():
    text = README.read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    relative = [l for l in links if not re.match(r"^[a-z][a-z0-9+.-]*:|^#", l)]
    assert relative, "the README links its docs"
    missing = [l for l in relative if not (REPO / l.split("#", 1)[0]).exists()]
    assert not missing, f"README links to missing files: {missing}"
