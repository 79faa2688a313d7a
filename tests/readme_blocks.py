"""The code blocks of the project's READMEs, and checks of the commands in them that can
be made offline: our own commands' subcommands and options, nox sessions, pip extras,
scripts and modules with their options. tests/packaging/test_readme.py applies them to the
README, tests/deploy/test_deploy_readmes.py to the deploy READMEs."""

from __future__ import annotations

import functools
import itertools
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
BIN = Path(sys.executable).parent
OURS = {"orders-local", "orders-cost"}


def blocks(readmes: list[Path], language: str) -> list[tuple[str, str]]:
    """(where, body) of every ``language`` block, ``where`` as ``path:line``."""
    found = []
    for readme in readmes:
        text = readme.read_text()
        for lang, body in BLOCK.findall(text):
            if lang == language:
                line = text[: text.index(body)].count("\n") + 1
                found.append((f"{readme.relative_to(ROOT)}:{line}", body))
    return found


def ids(found: list[tuple[str, str]]) -> list[str]:
    return [where for where, _ in found]


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
def help_text(*command: str, cwd: Path = ROOT) -> str:
    run = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60, cwd=cwd)
    assert run.returncode == 0, f"{' '.join(command)} --help: {run.stderr}"
    return run.stdout


def program_of(word: str) -> str:
    return Path(word).name


def check_ours(argv: list[str]) -> None:
    program = program_of(argv[0])
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


def check_nox(argv: list[str]) -> None:
    sessions = _nox_sessions()
    for flag, value in itertools.pairwise(argv):
        if flag == "-s":
            assert value in sessions, f"no nox session {value}"
    for word in argv[1:]:
        if "(" in word:
            assert word in sessions, f"no nox session {word}"


def check_pip(argv: list[str]) -> None:
    extras = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    for word in argv:
        if match := re.fullmatch(r"orders-core\[([\w,]+)\]", word):
            assert set(match.group(1).split(",")) <= extras, word


def check_script(argv: list[str]) -> None:
    script = next(w for w in argv[1:] if w.endswith(".py"))
    assert (ROOT / script).is_file(), script
    help_text(sys.executable, str(ROOT / script))
    for word in argv[argv.index(script) + 1 :]:
        if word.startswith("--"):
            assert word in help_text(sys.executable, str(ROOT / script)), f"{script} {word}"


def check_uvicorn(argv: list[str]) -> None:
    """Its options exist, and the app it names imports (``module:attribute``)."""
    import importlib

    text = help_text(sys.executable, "-m", "uvicorn")
    for word in argv[1:]:
        if word.startswith("--"):
            assert word in text, f"uvicorn {word}"
    (target,) = [w for w in argv[1:] if ":" in w and not w.startswith("-")]
    module, _, attribute = target.strip("'\"").partition(":")
    assert callable(getattr(importlib.import_module(module), attribute)), target
