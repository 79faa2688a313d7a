"""``import orders_core`` stays light: no provider SDK, no database driver, no OTel SDK.

Run in a fresh interpreter, since this test process has imported plenty already.
"""

import json
import subprocess
import sys

FORBIDDEN = (
    "boto3",
    "botocore",
    "sqlite3",
    "opentelemetry.sdk",
    "orders_local",
    "orders_aws",
    "orders_nats",
    "nats",
    "orders_postgres",
    "psycopg",
    "psycopg_pool",
    "jwt",
    "cryptography",
)


def loaded_after(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_importing_the_core_loads_no_provider_sdk_or_driver() -> None:
    modules = loaded_after("import orders_core, orders_core.application, orders_core.edges.http")
    assert "orders_core.application" in modules  # the probe itself works
    leaked = {m for m in modules if m.split(".")[0] in FORBIDDEN or m.startswith(FORBIDDEN)}
    assert leaked == set()


CREATE_ONE = (
    "from orders_core.edges.http import HttpApi, HttpRequest; "
    "from orders_core.application import OrderService; "
    "from orders_core.testing.memory import InMemoryStore; "
    "r = HttpApi(OrderService(InMemoryStore())).handle(HttpRequest('POST', '/orders', "
    '{\'content-type\': \'application/json\'}, body=b\'{"items":[{"id":"a","qty":1}]}\')); '
    "assert r.status == 201, r"
)
"""A fresh interpreter's first POST /orders, through the HTTP binding."""


def test_the_rest_path_does_not_import_cloudevents() -> None:
    # The cloudevents package is only for POST /events and queue adapters.
    modules = loaded_after(CREATE_ONE)
    assert "orders_core.domain" in modules
    assert not any(m.startswith("cloudevents") for m in modules)


def test_an_untraced_request_never_imports_opentelemetry() -> None:
    # The API is imported on first use (~18 ms of a cold start); an untraced create has none.
    logging_set_up = (
        "import logging; from orders_core.telemetry import JsonLogFormatter, log_line; "
        "h = logging.StreamHandler(); h.setFormatter(JsonLogFormatter()); "
        "logging.getLogger().addHandler(h); logging.getLogger().setLevel(logging.INFO); "
    )
    modules = loaded_after(
        logging_set_up + CREATE_ONE + "; log_line(logging.getLogger('t'), 'request', {})"
    )
    assert "orders_core.telemetry" in modules
    assert not any(m.startswith("opentelemetry") for m in modules)


def test_the_aws_adapter_imports_boto3_only_when_it_builds_a_client() -> None:
    modules = loaded_after("import orders_aws, orders_aws.dynamodb, orders_aws.shapes")
    assert "orders_aws.dynamodb" in modules
    assert not any(m.split(".")[0] in {"boto3", "botocore"} for m in modules)


def test_importing_a_lambda_trigger_builds_no_runtime_and_loads_no_botocore() -> None:
    """Only the module Lambda loads as the handler (``_HANDLER``) builds its runtime at
    import; tests and other modules importing a trigger pay for its code alone."""
    triggers = "orders_aws.apigw, orders_aws.sqs, orders_aws.eventbridge, orders_aws.stream"
    modules = loaded_after(
        f"import os; os.environ['ORDERS_TABLE'] = 't'; os.environ.pop('_HANDLER', None); "
        f"import {triggers}, orders_aws.publisher"
    )
    assert {"orders_aws.stream", "orders_aws.apigw"} <= modules
    assert not any(m.split(".")[0] in {"boto3", "botocore"} for m in modules)
    assert not any(m.startswith("orders_local") for m in modules)  # the console above all


def test_the_local_runtime_loads_the_console_only_when_it_builds_one() -> None:
    modules = loaded_after("import orders_local.runtime, orders_local.cli, orders_local.asgi_app")
    assert "orders_local.runtime" in modules
    assert "orders_local.console" not in modules


def test_the_bearer_module_imports_pyjwt_only_to_verify() -> None:
    # orders-local serve without --jwt-issuer, and a core without the jwt extra, never pay it.
    modules = loaded_after("import orders_local.bearer, orders_local.runtime, orders_local.cli")
    assert "orders_local.bearer" in modules
    assert not any(m.split(".")[0] in {"jwt", "cryptography"} for m in modules)


def test_the_lazy_trace_module_becomes_the_real_one_everywhere_on_first_use() -> None:
    # The package re-exports the spans module's lazy ``trace``: after one attribute access
    # both names hold opentelemetry.trace itself (no proxy left on a traced hot path).
    modules = loaded_after(
        "from orders_core import telemetry; from orders_core.telemetry import traces; "
        "assert 'opentelemetry.trace' not in sys.modules; "
        "assert telemetry.trace is traces.trace; telemetry.trace.SpanKind; "
        "assert telemetry.trace is traces.trace is sys.modules['opentelemetry.trace']"
    )
    assert "opentelemetry.trace" in modules
    assert "orders_core.telemetry.setup" not in modules  # runtimes import the SDK set-up


def test_the_openapi_and_cloudevents_modules_do_not_import_the_http_binding() -> None:
    # http.py imports both (lazily); neither imports it back, so there is no cycle.
    modules = loaded_after("import orders_core.edges.openapi, orders_core.edges.cloudevents_http")
    assert "orders_core.edges.openapi" in modules
    assert "orders_core.edges.http" not in modules
