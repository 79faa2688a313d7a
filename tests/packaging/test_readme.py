"""The README's code blocks work as a newcomer would use them, against the installed package.

* every ```` ```python ```` block runs on its own in a fresh interpreter (a block that is not
  meant to run takes another tag, such as ``text``);
* every ```` ```sh ```` block names only commands, subcommands, options, extras and nox
  sessions that exist, and its ``curl`` line answers what its comment says;
* every ```` ```console ```` block prints what it shows;
* figures quoted in prose as ``N req/s`` are the ones bench/README.md reports.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READMES = [ROOT / "README.md", ROOT / "deploy" / "local" / "README.md"]
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
BIN = Path(sys.executable).parent
OURS = {"orders-local", "orders-cost"}


def blocks(language: str) -> list[tuple[str, str]]:
    found = []
    for readme in READMES:
        text = readme.read_text()
        for lang, body in BLOCK.findall(text):
            if lang == language:
                line = text[: text.index(body)].count("\n") + 1
                found.append((f"{readme.relative_to(ROOT)}:{line}", body))
    return found


def _ids(found: list[tuple[str, str]]) -> list[str]:
    return [where for where, _ in found]


PYTHON = blocks("python")
SHELL = blocks("sh")
CONSOLE = blocks("console")


def test_the_readme_has_blocks_of_each_kind() -> None:
    assert len(PYTHON) >= 2
    assert SHELL
    assert CONSOLE


@pytest.mark.parametrize("code", [b for _, b in PYTHON], ids=_ids(PYTHON))
def test_each_python_block_runs_alone(code: str, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr


def commands(script: str) -> list[list[str]]:
    """The simple commands of a shell block: comments dropped, continuations joined, split at
    ``&&``, ``||``, ``;`` and ``|``, leading ``NAME=value`` assignments dropped."""
    script = script.replace("\\\n", " ")
    found = []
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        current: list[str] = []
        for word in [*words, "&&"]:
            if word in {"&&", "||", ";", "|"}:
                while current and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", current[0]):
                    current.pop(0)
                if current:
                    found.append(current)
                current = []
            else:
                current.append(word)
    return found


@functools.cache
def help_text(*command: str) -> str:
    run = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 0, f"{' '.join(command)} --help: {run.stderr}"
    return run.stdout


def _program(word: str) -> str:
    return Path(word).name


def _check_ours(argv: list[str]) -> None:
    program = _program(argv[0])
    executable = str(BIN / program)
    subcommands = re.findall(r"^    (\w+)", help_text(executable), re.M)
    sub = [argv[1]] if program == "orders-local" and len(argv) > 1 else []
    if sub:
        assert sub[0] in subcommands, f"{program} has no subcommand {sub[0]}"
    options = help_text(executable, *sub)
    for word in argv[1 + len(sub) :]:
        if word.startswith("--"):
            flag = word.split("=", 1)[0]
            assert re.search(rf"(^|\s|\[){re.escape(flag)}\b", options), f"{program} {flag}"


def _nox_sessions() -> set[str]:
    text = (ROOT / "noxfile.py").read_text()
    names = set(re.findall(r"^def (\w+)\(session", text, re.M))
    stores = re.findall(r'^    "([\w-]+)": \(', text, re.M)
    return names | {f"adapters(store='{s}')" for s in stores}


def _check_nox(argv: list[str]) -> None:
    sessions = _nox_sessions()
    for flag, value in itertools.pairwise(argv):
        if flag == "-s":
            assert value in sessions, f"no nox session {value}"
    for word in argv[1:]:
        if "(" in word:
            assert word in sessions, f"no nox session {word}"


def _check_pip(argv: list[str]) -> None:
    extras = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    for word in argv:
        if match := re.fullmatch(r"orders-core\[([\w,]+)\]", word):
            assert set(match.group(1).split(",")) <= extras, word


def _check_script(argv: list[str]) -> None:
    script = next(w for w in argv[1:] if w.endswith(".py"))
    assert (ROOT / script).is_file(), script
    help_text(sys.executable, str(ROOT / script))
    for word in argv[argv.index(script) + 1 :]:
        if word.startswith("--"):
            assert word in help_text(sys.executable, str(ROOT / script)), f"{script} {word}"


CHECKED = {"orders-local", "orders-cost", "nox", "pip", "python", "python3", "curl", "uvicorn"}
NOT_OURS = {"sqlite3", "cd", "npm", "cdk"}


@pytest.mark.parametrize("script", [b for _, b in SHELL], ids=_ids(SHELL))
def test_each_shell_block_names_what_exists(script: str) -> None:
    for argv in commands(script):
        program = _program(argv[0])
        assert program in CHECKED | NOT_OURS, f"the README test does not know {argv[0]!r}"
        if program in OURS:
            _check_ours(argv)
        elif program == "nox":
            _check_nox(argv)
        elif program == "pip" or argv[1:3] == ["-m", "pip"]:
            _check_pip(argv)
        elif program.startswith("python") and any(w.endswith(".py") for w in argv):
            _check_script(argv)
        elif program == "uvicorn":
            _check_uvicorn(argv)


def _check_uvicorn(argv: list[str]) -> None:
    """Its options exist, and the app it names imports (``module:attribute``)."""
    import importlib

    text = help_text(sys.executable, "-m", "uvicorn")
    for word in argv[1:]:
        if word.startswith("--"):
            assert word in text, f"uvicorn {word}"
    (target,) = [w for w in argv[1:] if ":" in w and not w.startswith("-")]
    module, _, attribute = target.strip("'\"").partition(":")
    assert callable(getattr(importlib.import_module(module), attribute)), target


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


@pytest.mark.parametrize("session", [b for _, b in CONSOLE], ids=_ids(CONSOLE))
def test_each_console_block_prints_what_it_shows(session: str) -> None:
    lines = session.splitlines()
    assert lines[0].startswith("$ "), "a console block starts with its command"
    argv = shlex.split(lines[0][2:])
    assert _program(argv[0]) in OURS
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
