"""The container image's definition, read as docker reads it, and its start command run as
the image runs it.

``python -m tests.deploy.container_image SCENARIO`` runs inside a fresh network namespace
(``unshare``; see test_container.py), so ``--host 0.0.0.0 --port 8080`` from the Dockerfile
bind exactly as written, reachable from nothing outside that namespace. It starts moto's
server and (for ``jwt``) a JWKS issuer on the namespace's loopback, runs the ENTRYPOINT with
the image's ENV plus a deployment's variables, the HEALTHCHECK command, a few requests, then
SIGTERM; it prints what it saw as JSON for the test to judge.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "container" / "Dockerfile"
SEED = b'{"items":[{"id":"sku-1","qty":2}],"customerId":"c-box"}'


@dataclass
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        """The JSON (exec) form's argv; shell form is not accepted for start commands."""
        value = json.loads(self.args)
        assert isinstance(value, list), self.args
        assert all(isinstance(v, str) for v in value), self.args
        return value


@dataclass
class Stage:
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        """ENV key=value pairs (shlex-quoted values, as docker splits them)."""
        found: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for token in shlex.split(instruction.args):
                name, sep, value = token.partition("=")
                assert sep, f"ENV {instruction.args!r}: use the key=value form"
                found[name] = value
        return found


def parse(path: Path = DOCKERFILE) -> tuple[dict[str, str], list[Stage]]:
    """(global ARGs, stages): continuation lines joined, comments dropped, ARG defaults
    substituted into FROM."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest.split()[0])
            stages.append(Stage(base))
        else:
            assert stages, f"{keyword} before FROM"
            stages[-1].instructions.append(Instruction(keyword, rest))
    return args, stages


def healthcheck_command(stage: Stage) -> list[str]:
    (check,) = stage.all("HEALTHCHECK")
    _, cmd, form = check.args.partition(" CMD ")
    assert cmd, f"HEALTHCHECK without CMD: {check.args}"
    return Instruction("CMD", form).exec_form()


def image_env(stage: Stage, bindir: str) -> dict[str, str]:
    """The environment a process in the image starts with: the ENV lines, with the image's
    venv on PATH replaced by the one running these tests."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/nonexistent",  # the image user's home (useradd --home-dir)
    }
    for name, value in stage.env().items():
        value = value.replace("$PATH", env["PATH"]).replace("${PATH}", env["PATH"])
        env[name] = value.replace("/opt/orders/bin", bindir)
    return env


# -- the scenario, inside the namespace --------------------------------------------------


def _loopback_up() -> None:
    """``ip link set lo up`` without iproute2: SIOCGIFFLAGS, set IFF_UP, SIOCSIFFLAGS."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sh", b"lo", flags | iff_up))


def _request(
    method: str, path: str, body: bytes | None = None, token: str | None = None
) -> tuple[int, bytes]:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(
        f"http://127.0.0.1:8080{path}", data=body, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def run(scenario: str) -> dict[str, Any]:
    from orders_aws.dynamodb import make_client
    from tests.aws.motoserver import MotoServer
    from tests.aws.support import FAKE_ENV, new_table

    _loopback_up()
    _, stages = parse()
    final = stages[-1]
    argv = final.all("ENTRYPOINT")[0].exec_form()
    env = image_env(final, str(Path(sys.executable).parent))
    os.environ.update(FAKE_ENV)
    moto = MotoServer().start()
    new_table(make_client(endpoint_url=moto.endpoint), "orders-box")
    # What a deployment sets (deploy/container/README.md), nothing else.
    env.update(
        {
            "ORDERS_LOCAL_TABLE": "orders-box",
            "ORDERS_LOCAL_DYNAMODB_ENDPOINT": moto.endpoint,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
    )
    token = None
    issuer = None
    if scenario == "jwt":
        from tests.local.jwks import AUDIENCE, JwksServer, Key, claims

        key = Key("k1")
        issuer = JwksServer([key])
        env.update({"ORDERS_JWT_ISSUER": issuer.issuer, "ORDERS_JWT_AUDIENCE": AUDIENCE})
        token = key.sign(claims(issuer.issuer))
    elif scenario == "opt-out":
        env["ORDERS_LOCAL_ALLOW_REMOTE"] = "1"
    seen: dict[str, Any] = {"argv": argv, "env": sorted(env)}
    proc = subprocess.Popen(
        argv, env=env, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "listening on http://" in line:
                break
        seen["startup"] = "".join(lines)
        if proc.poll() is None:
            check = subprocess.run(healthcheck_command(final), env=env, timeout=10)
            seen["healthcheck_rc"] = check.returncode
            seen["healthz"] = _request("GET", "/healthz")[0]
            status, body = _request("POST", "/orders", SEED, token)
            seen["create"] = status
            seen["order"] = json.loads(body) if status == 201 else body.decode()
            if token is not None:
                seen["create_without_token"] = _request("POST", "/orders", SEED)[0]
            if status == 201:
                order_id = seen["order"]["orderId"]
                seen["read"] = _request("GET", f"/orders/{order_id}", token=token)[0]
        proc.terminate()
        _, rest = proc.communicate(timeout=30)
        seen["stderr"] = seen["startup"] + rest
        seen["exit"] = proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        moto.stop()
        if issuer is not None:
            issuer.stop()
    return seen


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1])))
