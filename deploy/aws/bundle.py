"""Build the Lambda bundle: ``dist/orders-lambda-<arch>.zip``.

    python -m deploy.aws.bundle [--arch arm64|x86_64] [--python 3.12] [--out dist]
                                [--max-mb 10] [--no-bytecode]

* Dependencies come as manylinux wheels for the target (``pip install --platform ...
  --only-binary=:all: --target``), so the bundle is right for Lambda whatever builds it.
* uvicorn and what it pulls (the local runtime's HTTP server, a base dependency) are left
  out: Lambda never imports orders_local (with them the bundle was 13.2 MB, over 10).
* boto3 and botocore are left out: the Lambda Python runtime ships them. That saves ~15 MB
  unzipped and keeps cold starts lower; the price is running whatever SDK version the runtime
  has (pin one through a layer if you need to).
* Bytecode is compiled by an interpreter of the target version: ``python3.12`` on PATH, or
  one pyenv installed (``$PYENV_ROOT``, ``pyenv root`` or ``~/.pyenv``, ``versions/3.12*``)
  even when its shim is not enabled; with unchecked-hash pycs and ``/var/task`` paths, so it
  stays reproducible. A bundle without it cold-starts markedly slower (~1.8x measured on
  this machine type, shared FACTS), so its absence is warned about, not hidden.
* Deterministic: entries sorted, timestamps fixed at 1980-01-01, fixed permissions, no
  install-path metadata. The same inputs give the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
PLATFORMS: Final = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
EXCLUDED: Final = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3")
LOCAL_ONLY: Final = ("uvicorn",)
"""Base dependencies only the local runtime imports (its HTTP server): left out of the
bundle with everything they pull (httptools, uvloop, watchfiles, websockets, ...)."""
"""Provided by the Lambda runtime (and only needed with boto3)."""
FIXED_TIME: Final = (1980, 1, 1, 0, 0, 0)


class BundleError(RuntimeError):
    pass


def _version_key(path: Path) -> tuple[int, ...]:
    """3.12.10 after 3.12.9: the numeric parts of the pyenv version directory's name."""
    return tuple(int(part) for part in path.parents[1].name.split(".") if part.isdigit())


def pyenv_interpreters(version: str) -> list[Path]:
    """``python<version>`` of every pyenv-installed <version>.x, newest first.

    pyenv's shims answer "command not found" for versions not enabled (PYENV_VERSION or
    ``pyenv global``), yet the interpreters are there under the pyenv root.
    """
    roots: list[Path] = []
    if os.environ.get("PYENV_ROOT"):
        roots.append(Path(os.environ["PYENV_ROOT"]))
    pyenv = shutil.which("pyenv")
    if pyenv is not None:
        answer = subprocess.run(
            [pyenv, "root"], capture_output=True, text=True, check=False, timeout=30
        )
        if answer.returncode == 0 and answer.stdout.strip():
            roots.append(Path(answer.stdout.strip()))
    roots.append(Path.home() / ".pyenv")
    found: list[Path] = []
    for root in dict.fromkeys(roots):
        versions = root / "versions"
        if not versions.is_dir():
            continue
        for directory in versions.iterdir():
            if directory.name == version or directory.name.startswith(f"{version}."):
                interpreter = directory / "bin" / f"python{version}"
                if interpreter.is_file():
                    found.append(interpreter)
    return sorted(found, key=_version_key, reverse=True)


def find_interpreter(version: str) -> str | None:
    """An interpreter of exactly ``version`` (e.g. 3.12), or None.

    Tried in order: ``python<version>`` on PATH, pyenv's installs, ``python3``, this Python;
    each is asked its version, so a failing shim or another version is passed over.
    """
    candidates: list[str] = []
    if (named := shutil.which(f"python{version}")) is not None:
        candidates.append(named)
    candidates += [str(p) for p in pyenv_interpreters(version)]
    if (python3 := shutil.which("python3")) is not None:
        candidates.append(python3)
    candidates.append(sys.executable)
    for path in dict.fromkeys(candidates):
        try:
            probe = subprocess.run(
                [path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return path
    return None


def precompile(target: Path, python: str) -> bool:
    """Compile the bundle's bytecode with a Python ``python``; warn and return False if none."""
    interpreter = find_interpreter(python)
    if interpreter is None:
        print(
            f"warning: no Python {python} found (PATH, pyenv): the bundle ships without "
            f"bytecode and will cold-start slower (about 1.8x). Install python{python} "
            f"(for example `pyenv install {python}`) to fix.",
            file=sys.stderr,
        )
        return False
    compile_bytecode(target, interpreter)
    return True


def lambda_requirements() -> list[str]:
    """The distribution's base dependencies but the local runtime's server."""
    import re
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return [d for d in declared if re.split(r"[\[<>=!~; ]", d, maxsplit=1)[0] not in LOCAL_ONLY]


def install(target: Path, arch: str, python: str, work: Path) -> None:
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    wheels = work / "wheels"
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(ROOT)], check=True)
    (wheel,) = wheels.glob("orders_core-*.whl")
    target_options = [
        "--no-compile",
        "--target",
        str(target),
        "--platform",
        PLATFORMS[arch],
        "--python-version",
        python,
        "--implementation",
        "cp",
        "--only-binary=:all:",
    ]
    subprocess.run([*pip, "install", *target_options, "--no-deps", str(wheel)], check=True)
    subprocess.run([*pip, "install", *target_options, *lambda_requirements()], check=True)
    for name in os.listdir(target):
        base = name.split("-")[0].lower()
        # orders_local is the local runtime: never imported on Lambda.
        if base in EXCLUDED or name in ("bin", "orders_local"):
            shutil.rmtree(target / name, ignore_errors=True)
    for stray in target.glob("*.md"):  # a dependency installs its docs at the top level
        stray.unlink()
    for meta in target.glob("*.dist-info"):
        # Paths of the build machine: the only non-reproducible bytes pip leaves.
        for volatile in ("direct_url.json", "REQUESTED", "RECORD", "INSTALLER"):
            (meta / volatile).unlink(missing_ok=True)


def compile_bytecode(target: Path, interpreter: str) -> None:
    subprocess.run(
        [
            interpreter,
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            "-s",
            str(target),
            "-p",
            "/var/task",
            str(target),
        ],
        check=True,
    )


def write_zip(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    files = sorted((p.relative_to(source).as_posix(), p) for p in source.rglob("*") if p.is_file())
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, path in files:
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, whatever builds it
            archive.writestr(info, path.read_bytes(), compresslevel=9)


def build(
    arch: str = "arm64",
    python: str = "3.12",
    out: Path = ROOT / "dist",
    max_mb: float = 10.0,
    bytecode: bool = True,
) -> Path:
    if arch not in PLATFORMS:
        raise BundleError(f"unknown architecture {arch!r}: use {' or '.join(PLATFORMS)}")
    destination = out / f"orders-lambda-{arch}.zip"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        target = work / "bundle"
        install(target, arch, python, work)
        if bytecode:
            precompile(target, python)
        write_zip(target, destination)
    check_size(destination, max_mb)
    return destination


def check_size(bundle: Path, max_mb: float) -> float:
    """Print the bundle's size and digest; raise when it is over ``max_mb``."""
    size_mb = bundle.stat().st_size / 1_000_000
    digest = hashlib.sha256(bundle.read_bytes()).hexdigest()[:16]
    print(f"{bundle}: {size_mb:.2f} MB zipped (limit {max_mb:g} MB), sha256 {digest}...")
    if size_mb > max_mb:
        raise BundleError(f"bundle is {size_mb:.2f} MB, over the {max_mb:g} MB limit")
    return size_mb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.aws.bundle", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--arch",
        choices=sorted(PLATFORMS),
        default="arm64",
        help="Lambda architecture (arm64 is cheaper per ms)",
    )
    parser.add_argument("--python", default="3.12", help="Lambda Python runtime version")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output directory")
    parser.add_argument("--max-mb", type=float, default=10.0, help="fail above this zipped size")
    parser.add_argument("--no-bytecode", action="store_true", help="do not precompile")
    args = parser.parse_args(argv)
    try:
        build(args.arch, args.python, args.out, args.max_mb, not args.no_bytecode)
    except (BundleError, subprocess.CalledProcessError) as exc:
        print(f"bundle: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
