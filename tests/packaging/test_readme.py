"""The README's code blocks work as a newcomer would use them, against the installed package.

* every ```` ```python ```` block runs on its own in a fresh interpreter (a block that is not
  meant to run takes another tag, such as ``text``);
* every ```` ```sh ```` block names only commands, subcommands, options, extras and nox
  sessions that exist, and its ``curl`` line answers what its comment says;
* every ```` ```console ```` block prints what it shows;
* figures quoted in prose as ``N req/s`` are the ones bench/README.md reports.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.readme_blocks import (
    BIN,
    BLOCK,
    OURS,
    ROOT,
    blocks,
    check_nox,
    check_ours,
    check_pip,
    check_script,
    check_uvicorn,
    commands,
    ids,
    program_of,
)

READMES = [ROOT / "README.md", ROOT / "deploy" / "local" / "README.md"]
PYTHON = blocks(READMES, "python")
SHELL = blocks(READMES, "sh")
CONSOLE = blocks(READMES, "console")


def test_the_readme_has_blocks_of_each_kind() -> None:
    assert len(PYTHON) >= 2
    assert SHELL
    assert CONSOLE


@pytest.mark.parametrize("code", [b for _, b in PYTHON], ids=ids(PYTHON))
def test_each_python_block_runs_alone(code: str, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr


CHECKED = {"orders-local", "orders-cost", "nox", "pip", "python", "python3", "curl", "uvicorn"}
NOT_OURS = {"sqlite3", "cd", "npm", "cdk"}


@pytest.mark.parametrize("script", [b for _, b in SHELL], ids=ids(SHELL))
def test_each_shell_block_names_what_exists(script: str) -> None:
    for argv in commands(script):
        program = program_of(argv[0])
        assert program in CHECKED | NOT_OURS, f"the README test does not know {argv[0]!r}"
        if program in OURS:
            check_ours(argv)
        elif program == "nox":
            check_nox(argv)
        elif program == "pip" or argv[1:3] == ["-m", "pip"]:
            check_pip(argv)
        elif program.startswith("python") and any(w.endswith(".py") for w in argv):
            check_script(argv)
        elif program == "uvicorn":
            check_uvicorn(argv)


def test_the_curl_example_answers_as_shown(tmp_path: Path) -> None:
    """Run the README's curl line against a real server and compare with its comment."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^(curl .*localhost:8080.*)\n# (\d{3}) (\{.*\})$", text, re.M)
    assert match, "the README's curl example and its '# 201 {...}' comment"
    line, status, shown = match.groups()
    server = subprocess.Popen(
        [str(BIN / "orders-local"), "serve", "--port", "0", "--db", str(tmp_path / "o.db")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stderr is not None
        port = ""
        for _ in range(50):
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", server.stderr.readline())
            if found:
                port = found.group(1)
                break
        assert port, "the server did not start"
        argv = shlex.split(line.replace("localhost:8080", f"127.0.0.1:{port}"))
        run = subprocess.run(
            [*argv, "-s", "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=30
        )
    finally:
        server.terminate()
        server.communicate(timeout=20)
    body, code = run.stdout.rsplit("\n", 1)
    assert code == status
    answer = json.loads(body)
    # The comment elides with "..."; every key/value it spells out must be in the answer.
    for key, value in re.findall(r'"(\w+)":("[^".]+"|\d+|\[[^\]]*\])', shown):
        assert key in answer, key
        assert answer[key] == json.loads(value), key


@pytest.mark.parametrize("session", [b for _, b in CONSOLE], ids=ids(CONSOLE))
def test_each_console_block_prints_what_it_shows(session: str) -> None:
    lines = session.splitlines()
    assert lines[0].startswith("$ "), "a console block starts with its command"
    argv = shlex.split(lines[0][2:])
    assert program_of(argv[0]) in OURS
    run = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.rstrip("\n").splitlines() == lines[1:]


def _prose(text: str) -> str:
    return BLOCK.sub("", text)


def test_throughput_figures_agree_with_bench_readme() -> None:
    bench = (ROOT / "bench" / "README.md").read_text()
    figures = re.findall(r"(\d{1,3}(?:,\d{3})+) req/s", _prose((ROOT / "README.md").read_text()))
    assert figures
    for figure in figures:
        assert figure in bench, f"README quotes {figure} req/s; bench/README.md does not"


def test_the_readme_states_the_api_rules() -> None:
    """What a client must know and cannot guess (each was missing once)."""
    text = (ROOT / "README.md").read_text()
    assert re.search(r"`unitPrice`[^.]*integer[^.]*minor units", text)
    assert re.search(r"`customerId`[^.]*required", text)
    assert re.search(r"`limit`[^.]*1[-\u2013 to]+100", text)
    assert "/healthz" in text
