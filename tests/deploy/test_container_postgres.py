"""The PostgreSQL variants of the container manifests (Kubernetes, Cloud Run on Cloud SQL):
the image's own CLI with --store postgres, the URL only from a secret, a relay that keeps
running, a connection budget the server can hold. tests/postgres/test_manifests.py runs
the command against a real PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.test_container import (
    HERE,
    _check_image,
    _check_probe,
    _documents,
    cli_env_names,
    final_stage,
)

pytest.importorskip("yaml", reason="the deploy nox session installs PyYAML")

KUBERNETES = HERE / "kubernetes" / "orders-core-postgres.yaml"
CLOUD_RUN = HERE / "cloudrun" / "service-postgres.yaml"
COMMAND = ["orders-local", "serve", "--host", "0.0.0.0", "--port", "8080", "--store", "postgres"]
POSTGRES_MAX_CONNECTIONS = 100
"""PostgreSQL's default max_connections (managed services size it by instance class)."""


def _container(path: Any) -> dict[str, Any]:
    docs = _documents(path)
    if "Deployment" in docs:
        pod = docs["Deployment"]["spec"]["template"]["spec"]
    else:
        pod = docs["Service"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return dict(container)


@pytest.mark.parametrize("path", [KUBERNETES, CLOUD_RUN], ids=["kubernetes", "cloudrun"])
def test_the_command_is_the_images_cli_on_postgres(path: Any) -> None:
    container = _container(path)
    assert container["command"] == COMMAND
    assert "args" not in container
    from orders_local.cli import build_parser

    args = build_parser().parse_args(COMMAND[1:])
    assert (args.host, args.port, args.store) == ("0.0.0.0", 8080, "postgres")
    assert COMMAND[0] in final_stage().all("ENTRYPOINT")[0].exec_form()
    _check_image(container["image"])


@pytest.mark.parametrize("path", [KUBERNETES, CLOUD_RUN], ids=["kubernetes", "cloudrun"])
def test_the_database_url_comes_from_a_secret_and_every_name_is_the_clis(path: Any) -> None:
    env = {e["name"]: e for e in _container(path)["env"]}
    url = env["ORDERS_DATABASE_URL"]
    assert "secretKeyRef" in url["valueFrom"]
    assert "value" not in url
    assert {"ORDERS_JWT_ISSUER", "ORDERS_JWT_AUDIENCE"} <= set(env)
    assert "ORDERS_LOCAL_ALLOW_REMOTE" not in env
    assert "ORDERS_LOCAL_TABLE" not in env  # nothing of the DynamoDB variant carried over
    assert set(env) <= cli_env_names(), set(env) - cli_env_names()
    assert env["ORDERS_LOCAL_SINK"]["value"].startswith("webhook:")
    assert "postgresql://" not in path.read_text().split("apiVersion", 1)[1]  # no URL inline


def test_kubernetes_pods_fit_the_databases_connections() -> None:
    docs = _documents(KUBERNETES)
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    container = _container(KUBERNETES)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    _check_probe(container["readinessProbe"], "http")
    _check_probe(container["livenessProbe"], "http")
    env = {e["name"]: e.get("value") for e in container["env"]}
    pool_max, threads = int(env["ORDERS_LOCAL_POOL_MAX"]), int(env["ORDERS_LOCAL_THREADS"])
    assert int(env["ORDERS_LOCAL_POOL_MIN"]) <= pool_max <= threads
    replicas = docs["HorizontalPodAutoscaler"]["spec"]["maxReplicas"]
    surge = docs["Deployment"]["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    # Each pod: its pool, the relay's lock session and its LISTEN session; a rolling update
    # adds `surge` pods; leave PostgreSQL's superuser_reserved_connections (3) free.
    assert (replicas + surge) * (pool_max + 2) <= POSTGRES_MAX_CONNECTIONS - 3


def test_cloud_run_keeps_the_relays_cpu_and_reaches_cloud_sql() -> None:
    service = _documents(CLOUD_RUN)["Service"]
    annotations = service["spec"]["template"]["metadata"]["annotations"]
    assert annotations["run.googleapis.com/cpu-throttling"] == "false"  # relay between requests
    assert int(annotations["autoscaling.knative.dev/minScale"]) >= 1
    assert annotations["run.googleapis.com/cloudsql-instances"].count(":") == 2
    container = _container(CLOUD_RUN)
    assert container["ports"] == [{"name": "http1", "containerPort": 8080}]
    _check_probe(container["startupProbe"], 8080)
    text = CLOUD_RUN.read_text()
    assert "allUsers" not in text
    assert "run.googleapis.com/invoker-iam-disabled" not in text
