"""deploy/gcp, checked offline: formatted, every resource present, least privilege, pushes
authenticated, nobody public unless asked, and the files agree with the code they deploy.

(``terraform validate`` needs the Google provider, which ``terraform init`` downloads from the
registry: not possible offline, so it is not run here; deploy/gcp/README.md says so.)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from orders_gcp.documents import INDEXES
from orders_gcp.push_endpoint import DEFAULT_PATH

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "gcp"
CLOUD_RUN_SOURCE = Path(__file__).resolve().parents[2] / "src/adapters/orders_gcp/cloud_run.py"


def _clean(value: Any) -> Any:
    """python-hcl2 keeps string quotes and marks blocks: plain values instead."""
    if isinstance(value, dict):
        return {
            _clean(k): _clean(v)
            for k, v in value.items()
            if k not in ("__is_block__", "__comments__")
        }
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@cache
def terraform() -> dict[str, Any]:
    hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 parses the Terraform files")
    merged: dict[str, Any] = {"resource": {}, "variable": {}, "data": {}, "output": {}}
    for path in sorted(DEPLOY.glob("*.tf")):
        with path.open() as handle:
            parsed = _clean(hcl2.load(handle))
        for kind in merged:
            for block in parsed.get(kind, []):
                for name, body in block.items():
                    if kind in ("resource", "data"):
                        for label, inner in body.items():
                            merged[kind].setdefault(name, {})[label] = inner
                    else:
                        merged[kind][name] = body
    return merged


def resources(kind: str) -> dict[str, Any]:
    found: dict[str, Any] = terraform()["resource"].get(kind, {})
    return found


def default(variable: str) -> Any:
    return terraform()["variable"][variable].get("default")


def test_terraform_files_are_formatted() -> None:
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not on PATH")
    env = {k: v for k, v in os.environ.items() if k != "TF_CLI_CONFIG_FILE"}
    done = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", str(DEPLOY)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_resource_is_declared() -> None:
    expected = {
        "google_project_service": {"apis"},
        "google_firestore_database": {"orders"},
        "google_firestore_index": {"orders_by_customer", "orders_by_customer_and_owner"},
        "google_firestore_field": {"outbox_ttl", "unindexed"},
        "google_pubsub_topic": {"events", "commands", "dead_letter"},
        "google_pubsub_subscription": {"commands_push", "dead_letter_hold"},
        "google_service_account": {"run", "push"},
        "google_cloud_run_v2_service": {"orders"},
        "google_billing_budget": {"orders"},
    }
    for kind, names in expected.items():
        assert set(resources(kind)) >= names, kind


def test_the_indexes_are_the_ones_the_store_queries_need() -> None:
    declared = {
        (index["collection"], tuple((f["field_path"], f["order"]) for f in index["fields"]))
        for index in resources("google_firestore_index").values()
    }
    assert declared == set(INDEXES)
    ttl = resources("google_firestore_field")["outbox_ttl"]
    assert (ttl["collection"], ttl["field"]) == ("outbox", "expireAt")  # firestore_outbox's
    assert "ttl_config" in ttl


def test_pushes_are_authenticated_retried_and_dead_lettered() -> None:
    push = resources("google_pubsub_subscription")["commands_push"]
    (config,) = push["push_config"]
    (oidc,) = config["oidc_token"]
    assert oidc["service_account_email"] == "${google_service_account.push.email}"
    assert oidc["audience"] == "${var.push_audience}"
    assert config["push_endpoint"] == "${local.push_url}"
    assert f'uri}}{DEFAULT_PATH}"' in (DEPLOY / "main.tf").read_text()  # where push_url goes
    assert push["dead_letter_policy"][0]["dead_letter_topic"].startswith(
        "${google_pubsub_topic.dead_letter"
    )
    assert {"minimum_backoff", "maximum_backoff"} <= set(push["retry_policy"][0])
    service = resources("google_cloud_run_v2_service")["orders"]
    assert "${var.push_audience}" in service["custom_audiences"]


def test_push_claims_are_trusted_only_where_cloud_run_verifies_every_caller() -> None:
    """ORDERS_GCP_PUSH_VERIFY=platform checks claims, not signatures: right only behind
    Cloud Run IAM. With allUsers as invoker (public = true) Cloud Run admits a request it
    has verified nothing of, so the app must verify the push token itself (token)."""
    (container,) = resources("google_cloud_run_v2_service")["orders"]["template"][0]["containers"]
    (verify,) = [e["value"] for e in container["env"] if e["name"] == "ORDERS_GCP_PUSH_VERIFY"]
    assert verify == '${var.invoker == "iam" && !var.public ? "platform" : "token"}'


def test_no_public_invoker_unless_asked() -> None:
    members = {
        name: binding
        for kind in ("google_cloud_run_v2_service_iam_member", "google_project_iam_member")
        for name, binding in resources(kind).items()
    }
    public = [n for n, b in members.items() if b["member"] in ("allUsers", "allAuthenticatedUsers")]
    assert public == ["public"]
    assert members["public"]["count"] == "${var.public ? 1 : 0}"
    assert default("public") is False
    service = resources("google_cloud_run_v2_service")["orders"]
    assert service["invoker_iam_disabled"] == '${var.invoker == "app"}'
    assert default("invoker") == "iam"
    assert default("invokers") == []


def test_least_privilege() -> None:
    project_roles = {
        (b["role"], b["member"]) for b in resources("google_project_iam_member").values()
    }
    assert project_roles == {
        ("roles/datastore.user", "serviceAccount:${google_service_account.run.email}")
    }
    firestore = resources("google_project_iam_member")["run_firestore"]
    assert "databases/${var.database}" in firestore["condition"][0]["expression"]
    grants = [
        b
        for kind, bindings in terraform()["resource"].items()
        if kind.endswith(("_iam_member", "_iam_binding", "_iam_policy"))
        for b in bindings.values()
    ]
    assert not [b for b in grants if re.search(r"roles/(owner|editor|.*admin)", b["role"])]
    topics = {
        (b["topic"], b["member"]) for b in resources("google_pubsub_topic_iam_member").values()
    }
    run = "serviceAccount:${google_service_account.run.email}"
    assert {t for t, m in topics if m == run} == {
        "${google_pubsub_topic.events.id}",
        "${google_pubsub_topic.dead_letter.id}",
    }
    push = "serviceAccount:${google_service_account.push.email}"
    assert [b["role"] for b in grants if b.get("member") == push] == ["roles/run.invoker"]


def test_the_relay_keeps_cpu_between_requests() -> None:
    (container,) = resources("google_cloud_run_v2_service")["orders"]["template"][0]["containers"]
    assert container["resources"][0]["cpu_idle"] is False


def test_the_service_is_configured_with_variables_the_app_reads() -> None:
    (container,) = resources("google_cloud_run_v2_service")["orders"]["template"][0]["containers"]
    names = {env["name"] for env in container["env"]}
    source = CLOUD_RUN_SOURCE.read_text()
    assert names, "no environment"
    assert all(f'"{name}"' in source for name in names), names - {
        n for n in names if f'"{n}"' in source
    }


def test_the_knative_service_matches_and_makes_nothing_public() -> None:
    yaml = pytest.importorskip("yaml")
    service = yaml.safe_load((DEPLOY / "service.yaml").read_text())
    template = service["spec"]["template"]
    assert template["metadata"]["annotations"]["run.googleapis.com/cpu-throttling"] == "false"
    (container,) = template["spec"]["containers"]
    yaml_env = {e["name"] for e in container["env"]}
    (tf_container,) = resources("google_cloud_run_v2_service")["orders"]["template"][0][
        "containers"
    ]
    assert yaml_env == {e["name"] for e in tf_container["env"]}
    assert "allUsers" not in (DEPLOY / "service.yaml").read_text()


def test_the_readme_says_how_to_deploy_configure_tear_down_and_what_it_costs() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for heading in ("## Deploy", "## Configure", "## Tear down", "## What it costs"):
        assert heading in readme
    for source in (
        "cloud.google.com/run/pricing",
        "cloud.google.com/firestore/pricing",
        "cloud.google.com/pubsub/pricing",
    ):
        assert source in readme
    assert re.search(r"20\d\d-\d\d-\d\d", readme)  # prices carry the date they were read
