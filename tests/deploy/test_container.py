"""deploy/container offline (no Docker engine): the Dockerfile linted as parsed instructions,
its ignore file, the Cloud Run and Kubernetes manifests, and the image's start command run
exactly as the image runs it (same argv, same environment names) against moto's server:
as mapped root in a user namespace anywhere, and, where the tests run as real root, as the
image's USER (uid and gid 10001, no groups) on a read-only root file system."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.container_image import (
    DOCKERFILE,
    ROOT,
    Stage,
    drop_to,
    healthcheck_command,
    image_user,
    parse,
)

yaml = pytest.importorskip("yaml", reason="the deploy nox session installs PyYAML")

HERE = ROOT / "deploy" / "container"
CLOUD_RUN = HERE / "cloudrun" / "service.yaml"
KUBERNETES = HERE / "kubernetes" / "orders-core.yaml"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
ENTRYPOINT = ["orders-local", "serve", "--host", "0.0.0.0", "--port", "8080"]
REQUIRED_ENV = {"ORDERS_LOCAL_TABLE", "ORDERS_JWT_ISSUER", "ORDERS_JWT_AUDIENCE"}
AWS_ENV = {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


@cache
def cli_env_names() -> frozenset[str]:
    """Every variable `orders-local serve --help` documents ([ORDERS_...] in its help)."""
    from orders_local.arguments import build_parser

    parser = build_parser()
    serve = parser._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    return frozenset(re.findall(r"\[(ORDERS_[A-Z_]+)", serve.format_help()))


@cache
def final_stage() -> Stage:
    return parse()[1][-1]


def test_cli_env_names_are_found() -> None:
    assert {"ORDERS_LOCAL_TABLE", "ORDERS_LOCAL_DYNAMODB_ENDPOINT", "ORDERS_JWT_ISSUER"} <= (
        cli_env_names()
    )


# -- the Dockerfile ---------------------------------------------------------------------------


def test_the_base_is_slim_python_312_pinned_by_tag() -> None:
    _, stages = parse()
    for stage in stages:
        name, _, tag = stage.base.partition(":")
        assert name == "python", stage.base
        assert re.fullmatch(r"3\.12\.\d+-slim(-\w+)?", tag), f"pin a patch release: {tag}"


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    (user,) = final_stage().all("USER")
    uid = user.args.split(":")[0]
    assert uid.isdigit(), "a numeric uid lets runAsNonRoot verify it"
    assert int(uid) >= 1000
    useradd = " ".join(i.args for i in final_stage().all("RUN"))
    assert f"--uid {uid}" in useradd
    # USER comes after every RUN, so nothing the image starts runs as root.
    keywords = [i.keyword for i in final_stage().instructions]
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")


def test_the_entrypoint_is_the_cli_in_exec_form_and_its_options_exist() -> None:
    (entry,) = final_stage().all("ENTRYPOINT")
    argv = entry.exec_form()
    assert argv == [*ENTRYPOINT, "--store", "dynamodb"]
    assert not final_stage().all("CMD"), "extra CMD arguments would be appended to the argv"
    from orders_local.arguments import build_parser

    args = build_parser().parse_args(argv[1:])  # the CLI accepts exactly this argv
    assert (args.host, args.port, args.store) == ("0.0.0.0", 8080, "dynamodb")


def test_port_healthcheck_and_bytecode() -> None:
    stage = final_stage()
    assert [i.args for i in stage.all("EXPOSE")] == ["8080"]
    assert healthcheck_command(stage)[:2] == ["python", "-c"]
    assert "127.0.0.1:8080/healthz" in healthcheck_command(stage)[2]
    from deploy.aws.container import HEALTH_COMMAND  # the ECS task's check is the same one

    assert tuple(healthcheck_command(stage)) == HEALTH_COMMAND
    env = stage.env()
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert "/opt/orders/bin" in env["PATH"].split(":")
    build = " ".join(i.args for s in parse()[1] for i in s.all("RUN"))
    assert "--no-compile" in build
    assert "compileall" in build
    assert "--invalidation-mode unchecked-hash" in build
    assert '".[aws,jwt,postgres]"' in build


def test_the_build_copies_only_what_the_ignore_file_lets_in() -> None:
    ignore = (HERE / "Dockerfile.dockerignore").read_text().splitlines()
    patterns = [p for p in (line.strip() for line in ignore) if p and not p.startswith("#")]
    assert patterns[0] == "*", "an allowlist: everything else (.git, .venv, .nox) stays out"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    sources = [
        src
        for stage in parse()[1]
        for copy in stage.all("COPY")
        if not copy.args.startswith("--from")
        for src in copy.args.split()[:-1]
    ]
    assert sources
    assert {s.rstrip("/") for s in sources} <= allowed, (sources, allowed)
    for source in sources:
        assert (ROOT / source).exists(), source


# -- manifests --------------------------------------------------------------------------------


def _documents(path: Path) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(path.read_text()) if d}


def _check_env(env: list[dict[str, Any]]) -> None:
    names = {e["name"] for e in env}
    assert names >= REQUIRED_ENV, REQUIRED_ENV - names
    unknown = names - cli_env_names() - AWS_ENV
    assert not unknown, f"not variables the CLI (or botocore) reads: {unknown}"
    assert "ORDERS_LOCAL_ALLOW_REMOTE" not in names  # authentication stays on
    for var in env:  # no secret inline: credentials come from secret references
        if var["name"] in {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}:
            assert "valueFrom" in var, var
            assert "value" not in var, var


def _check_image(image: str) -> None:
    name, _, tag = image.rpartition(":")
    assert name.endswith("/orders-core"), image
    assert tag == VERSION, image


def _check_probe(probe: dict[str, Any], port: object) -> None:
    assert probe["httpGet"]["path"] == "/healthz"
    assert probe["httpGet"]["port"] == port


def test_cloud_run_service() -> None:
    service = _documents(CLOUD_RUN)["Service"]
    assert service["apiVersion"] == "serving.knative.dev/v1"
    template = service["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert (
        1
        <= int(annotations["autoscaling.knative.dev/minScale"])
        <= int(annotations["autoscaling.knative.dev/maxScale"])
    )
    spec = template["spec"]
    assert spec["serviceAccountName"].endswith(".iam.gserviceaccount.com")
    assert 1 <= spec["containerConcurrency"] <= 1000
    (container,) = spec["containers"]
    _check_image(container["image"])
    assert container["ports"] == [{"name": "http1", "containerPort": 8080}]
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    _check_env(container["env"])
    _check_probe(container["startupProbe"], 8080)
    _check_probe(container["livenessProbe"], 8080)
    # Public access on Cloud Run is an IAM binding (allUsers -> roles/run.invoker) or the
    # invoker-IAM-disabled annotation: the manifest has neither.
    text = CLOUD_RUN.read_text()
    assert "allUsers" not in text
    assert "run.googleapis.com/invoker-iam-disabled" not in text


def test_kubernetes_deployment_service_and_autoscaler() -> None:
    docs = _documents(KUBERNETES)
    assert set(docs) == {"ServiceAccount", "Deployment", "Service", "HorizontalPodAutoscaler"}
    deployment = docs["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    image_uid = int(final_stage().all("USER")[0].args.split(":")[0])
    assert pod["securityContext"]["runAsUser"] == image_uid
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    _check_image(container["image"])
    assert container["ports"] == [{"name": "http", "containerPort": 8080}]
    _check_env(container["env"])
    _check_probe(container["readinessProbe"], "http")
    _check_probe(container["livenessProbe"], "http")
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    resources = container["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"} == set(resources["limits"])
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = docs["Service"]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    ((metric),) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"


# -- the start command ------------------------------------------------------------------------


def _bindir_with_cli() -> str:
    bindir = str(Path(sys.executable).parent)
    if not (Path(bindir) / "orders-local").exists():
        pytest.fail(f"no orders-local console script next to {sys.executable}")
    return bindir


def _unshare() -> list[str]:
    """A new network namespace (as an unprivileged user too, where user namespaces are on)."""
    argv = ["unshare", "--user", "--map-root-user", "--net", "--"]
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed: 0.0.0.0:8080 would not be isolated")
    probe = subprocess.run([*argv, "true"], capture_output=True, text=True, timeout=10)
    if probe.returncode != 0:
        pytest.skip(f"no network namespace for 0.0.0.0:8080 here: {probe.stderr.strip()}")
    return argv


def _unshare_as_root() -> list[str]:
    """New network and mount namespaces made by real root, mounts private so that nothing
    the scenario mounts reaches the host; the scenario drops to the image user itself."""
    reason = "needs real root to run as uid 10001"
    if os.geteuid() != 0:
        mapped = "the user-namespace tests run the same command as mapped root"
        pytest.skip(f"{reason}: running as uid {os.geteuid()} ({mapped})")
    for tool in ("unshare", "setpriv"):
        if shutil.which(tool) is None:
            pytest.skip(f"{reason}: {tool} (util-linux) is not installed")
    argv = ["unshare", "--net", "--mount", "--propagation", "private", "--fork", "--"]
    probe = [*argv, *drop_to(*image_user(final_stage())), "true"]
    result = subprocess.run(probe, capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        pytest.skip(f"{reason}: {shlex.join(probe)}: {result.stderr.strip()}")
    return argv


def _run_in_namespace(
    scenario: str, *options: str, unshare: list[str] | None = None
) -> dict[str, Any]:
    _bindir_with_cli()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    namespace = _unshare() if unshare is None else unshare
    module = ["-m", "tests.deploy.container_image", scenario, *options]
    result = subprocess.run(
        [*namespace, sys.executable, *module],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def _check_served_with_jwt(seen: dict[str, Any]) -> None:
    assert seen["argv"] == [*ENTRYPOINT, "--store", "dynamodb"]
    assert "listening on http://0.0.0.0:8080" in seen["startup"], seen["stderr"]
    assert "DynamoDB table orders-box" in seen["startup"]
    assert seen["healthcheck_rc"] == 0  # the Dockerfile's HEALTHCHECK, run as written
    assert seen["healthz"] == 200
    assert seen["create"] == 201, seen["order"]
    assert seen["order"]["status"] == "PENDING"
    assert seen["read"] == 200
    assert seen["create_without_token"] == 401
    assert seen["exit"] == 0, seen["stderr"]  # SIGTERM, as `docker stop` sends
    assert set(seen["env"]) - {"PATH", "HOME", "PYTHONUNBUFFERED"} <= (cli_env_names() | AWS_ENV)


@pytest.mark.slow
def test_the_start_command_serves_orders_with_jwt_as_the_image_runs_it() -> None:
    _check_served_with_jwt(_run_in_namespace("jwt"))


@pytest.mark.slow
def test_the_start_command_runs_as_the_image_user_on_a_read_only_root() -> None:
    """uid 10001 as the kernel records it, read while the server runs; every mount it can
    reach read-only; and a file created as that user anywhere a process usually writes
    (/tmp, /dev/shm, the venv, the checkout) refused with EROFS, which the kernel answers
    before checking permissions: so it is the mount that refuses, not just the mode."""
    unshare = _unshare_as_root()
    outside = os.readlink("/proc/self/ns/mnt")
    seen = _run_in_namespace("jwt", "--image-user", outside, unshare=unshare)
    _check_served_with_jwt(seen)
    uid, gid = image_user(final_stage())
    assert (uid, gid) == (10001, 10001)
    process = seen["identity"]
    assert process["Uid"] == f"{uid} {uid} {uid} {uid}", process  # real, effective, saved, fs
    assert process["Gid"] == f"{gid} {gid} {gid} {gid}", process
    assert process["Groups"] == "", process
    no_capabilities = "0" * 16
    for capabilities in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert process[capabilities] == no_capabilities, process
    assert process["NoNewPrivs"] == "1"
    assert (process["cwd"], process["HOME"]) == ("/", "/nonexistent")
    interpreters = seen["interpreter"]  # the venv's own, not a fallback the loader found
    assert interpreters["entrypoint"] == interpreters["here"], interpreters
    assert seen["writable_mounts"] == [], seen["writable_mounts"]
    assert "/tmp" in seen["writes"]
    assert set(seen["writes"].values()) == {"EROFS"}, seen["writes"]


def _quantity_bytes(value: str) -> int:
    """A Kubernetes memory quantity (``16Mi``, ``1G``, ``512``) in bytes."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}
    number, unit = re.fullmatch(r"(\d+)([KMG]i?|k)?", value).groups()  # type: ignore[union-attr]
    return int(number) * units.get(unit or "", 1)


def _empty_dirs(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, int]:
    """The container's emptyDir mounts: mount path -> the volume's sizeLimit in bytes."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    found = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        assert "emptyDir" in volume, f"{mount['name']}: only emptyDir volumes are checked"
        found[mount["mountPath"]] = _quantity_bytes(volume["emptyDir"]["sizeLimit"])
    return found


@pytest.mark.slow
def test_the_kubernetes_pod_runs_pinned_workers_with_only_its_scratch_volume_writable() -> None:
    """The Deployment's pod as the manifest builds it (the image user on a read-only root,
    its emptyDir at /tmp, sized as declared), running what deploy/container/README.md
    suggests for pods with CPUs of their own: two workers, each pinned to a CPU, their
    claims kept in the emptyDir. The pod is served and stopped cleanly, and /tmp is the one
    place it can write."""
    unshare = _unshare_as_root()
    pod = _documents(KUBERNETES)["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = _empty_dirs(pod, container)
    assert volumes == {"/tmp": 16 * 2**20}, volumes
    tuning = {"ORDERS_LOCAL_WORKERS": "2", "ORDERS_LOCAL_CPU_AFFINITY": "auto"}
    assert set(tuning) <= cli_env_names()
    spec = json.dumps({"emptyDirs": volumes, "env": tuning})
    outside = os.readlink("/proc/self/ns/mnt")
    seen = _run_in_namespace("jwt", "--image-user", outside, "--pod", spec, unshare=unshare)
    _check_served_with_jwt(seen)
    assert "2 workers" in seen["startup"], seen["startup"]
    assert seen["writable_mounts"] == ["/tmp"], seen["writable_mounts"]
    assert seen["writes"].pop("/tmp") == "written"
    assert set(seen["writes"].values()) == {"EROFS"}, seen["writes"]
    workers = seen["workers"]
    assert len(workers) == 2, workers
    cpus = sorted(worker["cpus"] for worker in workers)
    uid = image_user(final_stage())[0]
    claims = seen["scratch"][f"tmp/orders-local-cpus-{uid}"]
    if len(os.sched_getaffinity(0)) >= 2:
        assert all(c.isdigit() for c in cpus), workers
        assert len(set(cpus)) == 2, workers
        assert claims == [f"cpu-{c}.lock" for c in cpus], claims
        for cpu in cpus:
            assert f"pinned to CPU {cpu}" in seen["stderr"], seen["stderr"]
    else:  # one CPU: the first worker takes it, the second stays unpinned and says so
        assert claims == [f"cpu-{min(os.sched_getaffinity(0))}.lock"], claims
        assert "every allowed CPU is claimed" in seen["stderr"], seen["stderr"]


@pytest.mark.slow
def test_the_opt_out_starts_without_authentication_and_says_so() -> None:
    seen = _run_in_namespace("opt-out")
    assert "authentication off" in seen["stderr"]
    assert seen["healthcheck_rc"] == 0
    assert seen["create"] == 201
    assert seen["exit"] == 0


def test_without_jwt_settings_or_the_opt_out_the_image_refuses_to_start() -> None:
    """Refused before binding anything, so this runs outside a namespace."""
    from tests.deploy.container_image import image_env

    stage = final_stage()
    env = image_env(stage, _bindir_with_cli())
    env.update({"ORDERS_LOCAL_TABLE": "t", "AWS_REGION": "us-east-1"})
    result = subprocess.run(
        stage.all("ENTRYPOINT")[0].exec_form(),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "refusing to listen on non-loopback address 0.0.0.0" in result.stderr


def test_the_dockerfile_parser_sees_continuations_and_args() -> None:
    args, stages = parse(DOCKERFILE)
    assert args["PYTHON_IMAGE"].startswith("python:3.12")
    assert len(stages) == 2
    assert any("compileall" in i.args for i in stages[0].all("RUN"))
