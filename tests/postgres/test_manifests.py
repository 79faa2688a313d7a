"""The PostgreSQL manifests' command and environment, run against a real PostgreSQL.

As the pod runs it, except: 127.0.0.1 and a free port instead of 0.0.0.0:8080 (these tests
stay on loopback), the secret's URL is the test server's, the JWT issuer is a JWKS served
here, and the webhook sink (a broker that is not here) becomes a file.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.local.support import Client
from tests.postgres.support import Postgres

yaml = pytest.importorskip("yaml", reason="needs PyYAML (the postgres nox session has it)")
pytest.importorskip("jwt", reason="needs the jwt extra")
pytest.importorskip("psycopg")

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = {
    "kubernetes": ROOT / "deploy/container/kubernetes/orders-core-postgres.yaml",
    "cloudrun": ROOT / "deploy/container/cloudrun/service-postgres.yaml",
}
pytestmark = pytest.mark.slow


def _container(path: Path) -> dict[str, Any]:
    docs = {d["kind"]: d for d in yaml.safe_load_all(path.read_text()) if d}
    owner = docs.get("Deployment") or docs["Service"]
    (container,) = owner["spec"]["template"]["spec"]["containers"]
    return dict(container)


@pytest.mark.parametrize("name", list(MANIFESTS))
def test_the_manifests_command_serves_orders_from_postgres(
    postgres: Postgres, tmp_path: Path, name: str
) -> None:
    from tests.local.jwks import AUDIENCE, Key, claims, jwks_server

    container = _container(MANIFESTS[name])
    argv = [{"0.0.0.0": "127.0.0.1", "8080": "0"}.get(arg, arg) for arg in container["command"]]
    schema = postgres.new_schema()
    key = Key("k1", "EC")
    with jwks_server([key]) as idp:
        env = {e["name"]: e.get("value", "") for e in container["env"]}
        env.update(
            ORDERS_DATABASE_URL=postgres.url,
            ORDERS_DATABASE_SCHEMA=schema,
            ORDERS_JWT_ISSUER=idp.issuer,
            ORDERS_JWT_AUDIENCE=AUDIENCE,
            ORDERS_LOCAL_SINK=f"file:{tmp_path / 'events.jsonl'}",
        )
        bindir = str(Path(sys.executable).parent)
        proc = subprocess.Popen(
            argv,
            env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", **env},
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stderr is not None
            line = proc.stderr.readline()
            for _ in range(50):
                if "listening on" in line:
                    break
                line = proc.stderr.readline()
            port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]
            assert "data: PostgreSQL" in line
            client = Client(port)
            assert client.request("GET", "/healthz").status == 200
            body = b'{"items":[{"id":"sku-1","qty":1}]}'
            assert client.request("POST", "/orders", body).status == 401
            token = {"authorization": "Bearer " + key.sign(claims(idp.issuer))}
            assert client.request("POST", "/orders", body, token).status == 201
            client.close()
            events, deadline = tmp_path / "events.jsonl", time.monotonic() + 10
            while "order.created" not in events.read_text() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert events.read_text().count("order.created") == 1
        finally:
            proc.send_signal(signal.SIGTERM)
            _, rest = proc.communicate(timeout=30)
            postgres.drop(schema)
        assert proc.returncode == 0, rest
        assert postgres.url.split(":")[2].split("@")[0] not in line + rest  # the password
