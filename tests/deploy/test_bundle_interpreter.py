"""Which interpreter compiles the bundle's bytecode: one of the target version on PATH, or one
pyenv installed behind a shim that answers "command not found"; else a clear warning."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from deploy.aws.bundle import find_interpreter, precompile

V = "3.98"  # no real interpreter has it, whatever Python runs the tests
SHIM = '#!/bin/sh\necho "pyenv: $(basename "$0"): command not found" >&2\nexit 127\n'


def script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def fake_python(root: Path, name: str, answers: str) -> Path:
    """An executable answering the version probe (``-c 'print(major.minor)'``) with ``answers``."""
    return script(root / "versions" / name / "bin" / f"python{V}", f"#!/bin/sh\necho {answers}\n")


@pytest.fixture
def shimmed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH holds only pyenv-style shims that fail, as on a machine with pyenv but 3.12 not
    enabled (FACTS.md); no pyenv root yet."""
    bin_dir = tmp_path / "shims"
    for name in (f"python{V}", "python3"):
        script(bin_dir / name, SHIM)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PYENV_ROOT", raising=False)
    monkeypatch.delenv("PYENV_VERSION", raising=False)
    return bin_dir


def test_a_pyenv_python_behind_a_failing_shim_is_found_newest_first(
    shimmed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "pyenv"
    fake_python(root, f"{V}.1", V)
    newest = fake_python(root, f"{V}.10", V)
    fake_python(root, "3.9.1", "3.9")
    monkeypatch.setenv("PYENV_ROOT", str(root))
    assert find_interpreter(V) == str(newest)


def test_the_pyenv_root_is_asked_of_pyenv_itself(shimmed: Path, tmp_path: Path) -> None:
    root = tmp_path / "elsewhere"
    expected = fake_python(root, f"{V}.1", V)
    script(shimmed / "pyenv", f'#!/bin/sh\n[ "$1" = root ] && echo {root}\n')
    assert find_interpreter(V) == str(expected)


def test_the_default_pyenv_root_is_tried(shimmed: Path, tmp_path: Path) -> None:
    expected = fake_python(tmp_path / "home" / ".pyenv", f"{V}.1", V)
    assert find_interpreter(V) == str(expected)


def test_an_interpreter_of_another_version_is_not_taken(shimmed: Path, tmp_path: Path) -> None:
    fake_python(tmp_path / "home" / ".pyenv", f"{V}.1", "3.97")
    assert find_interpreter(V) is None


def test_without_one_the_warning_names_the_version(
    shimmed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert precompile(tmp_path, V) is False
    err = capsys.readouterr().err
    assert "{python}" not in err
    assert f"no Python {V}" in err
    assert f"Install python{V}" in err
    assert "without bytecode" in err


def test_the_running_interpreter_is_found_for_its_own_version() -> None:
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert find_interpreter(version) is not None
