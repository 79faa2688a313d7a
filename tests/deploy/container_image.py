"""The container image's definition, read as docker reads it, and its start command run as
the image runs it.

``python -m tests.deploy.container_image SCENARIO`` runs inside a fresh network namespace
(``unshare``; see test_container.py), so ``--host 0.0.0.0 --port 8080`` from the Dockerfile
bind exactly as written, reachable from nothing outside that namespace. It starts moto's
server and (for ``jwt``) a JWKS issuer on the namespace's loopback, runs the ENTRYPOINT with
the image's ENV plus a deployment's variables, the HEALTHCHECK command, a few requests, then
SIGTERM; it prints what it saw as JSON for the test to judge.

With ``--image-user`` (real root, ``unshare --net --mount``) the scenario first makes the
namespace's file systems read-only and runs the ENTRYPOINT and the HEALTHCHECK as the
Dockerfile's USER (uid and gid 10001, no supplementary groups, no capabilities), at the
same absolute paths; it then also reports who the process was and where it could write.
"""

from __future__ import annotations

import argparse
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

from tests.namespaces import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    mount_syscall,
    open_up_for,
)

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


def image_user(stage: Stage) -> tuple[int, int]:
    """USER uid:gid, both numeric: a runtime starts the ENTRYPOINT with exactly these."""
    (user,) = stage.all("USER")
    uid, sep, gid = user.args.partition(":")
    assert sep, f"USER {user.args}: give the group too (uid:gid)"
    assert uid.isdigit(), f"USER {user.args}: numeric uid:gid"
    assert gid.isdigit(), f"USER {user.args}: numeric uid:gid"
    return int(uid), int(gid)


def drop_to(uid: int, gid: int) -> list[str]:
    """An argv prefix: what follows runs with real, effective and saved ids uid:gid, no
    supplementary groups and no capabilities (none inheritable, an empty bounding set, no
    new privileges): a runtime starting USER uid:gid under the Kubernetes manifest's
    ``capabilities: drop: [ALL]`` and ``allowPrivilegeEscalation: false``.

    setpriv keeps its capabilities up to its own execve, so the path of what it runs (and a
    shebang's interpreter) would be looked up with CAP_DAC_READ_SEARCH: ``env`` execs the
    command again, as uid:gid with nothing, the way a runtime execs the ENTRYPOINT."""
    return [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
        "env",
        "--",
    ]


# -- a read-only root, inside the mount namespace (real root only) ----------------------

KEPT_FLAGS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "nosymfollow": MS_NOSYMFOLLOW,
}
"""Per-mount flags (mountinfo's names) a bind remount clears unless it passes them again."""
# Where a process may write on an ordinary root: with a read-only one, creating a file in
# each fails with EROFS (checked before permissions), as root or not.
WRITE_PROBE = """
import errno, json, os, sys
found = {}
for directory in sys.argv[1:]:
    path = os.path.join(directory, f".write-probe-{os.getpid()}")
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        found[directory] = errno.errorcode[exc.errno]
    else:
        os.unlink(path)
        found[directory] = "written"
print(json.dumps(found))
"""


@dataclass
class Mount:
    id: int
    point: str
    options: set[str]  # the mount's own (per-mount) options: ro or rw, nosuid, ...


def _mounts(pid: int | str = "self") -> list[Mount]:
    """/proc/PID/mountinfo, mount points unescaped (\\040 is a space)."""
    found = []
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        found.append(Mount(int(fields[0]), point, set(fields[5].split(","))))
    return found


def _mount_id(path: str) -> int | None:
    """The id of the mount ``path`` resolves to (None: it resolves to nothing)."""
    try:
        fd = os.open(path, os.O_PATH)
    except OSError:
        return None
    try:
        info = Path(f"/proc/self/fdinfo/{fd}").read_text()
    finally:
        os.close(fd)
    (mnt_id,) = re.findall(r"^mnt_id:\s*(\d+)", info, re.M)
    return int(mnt_id)


def visible_mounts(pid: int | str = "self") -> list[Mount]:
    """The mounts process ``pid`` reaches by path: a mount under another at the same point,
    or under a directory a tmpfs now covers, is listed but unreachable."""
    root = f"/proc/{pid}/root"
    return [m for m in _mounts(pid) if _mount_id(root + m.point) == m.id]


def _make_read_only() -> None:
    """Every mount this namespace reaches, read-only: a bind remount changes the mount's
    own flag (its nosuid, nodev, noexec kept), not the file system's, so the host's
    mounts stay as they were."""
    for mount in visible_mounts():
        if "ro" not in mount.options:
            kept = sum(flag for name, flag in KEPT_FLAGS.items() if name in mount.options)
            mount_syscall(None, mount.point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)


def read_only_root(uid: int, gid: int, outer_namespace: str) -> dict[str, list[str]]:
    """Makes this mount namespace what the image user sees: this interpreter's venv, the
    installation it links to, its import path and the checkout searchable at their own
    paths (the ENTRYPOINT runs the same venv; this process keeps importing), then nothing
    writable. Returns the directories opened up, with the entries kept in each."""
    opened = open_up_for(uid, gid, outer_namespace)
    _make_read_only()
    return opened


def scratch_volume(mount_path: str, size_bytes: int) -> list[str]:
    """A Kubernetes ``emptyDir`` at ``mount_path`` on the read-only root: a writable tmpfs
    (mode 1777, as the kubelet makes it, capped at the volume's ``sizeLimit``). Entries this
    interpreter or the checkout are reached through (CI's ``mktemp -d`` under /tmp) are
    bound back into it, read-only as they were; in an image they live under /opt and the
    volume starts empty. Returns the entries bound back."""
    keep = [sys.executable, sys.prefix, sys.base_prefix, str(ROOT), *filter(None, sys.path)]
    inside = sorted(
        {
            Path(os.path.abspath(path)).relative_to(mount_path).parts[0]
            for path in keep
            if Path(os.path.abspath(path)).is_relative_to(mount_path)
            and Path(os.path.abspath(path)) != Path(mount_path)
        }
    )
    fd = os.open(mount_path, os.O_PATH | os.O_DIRECTORY)
    try:
        options = f"mode=1777,size={size_bytes}"
        mount_syscall("tmpfs", mount_path, "tmpfs", MS_NOSUID | MS_NODEV, options)
        for name in inside:
            target = os.path.join(mount_path, name)
            os.mkdir(target)
            mount_syscall(f"/proc/self/fd/{fd}/{name}", target, None, MS_BIND | MS_REC)
    finally:
        os.close(fd)
    return inside


def processes_under(pid: int) -> list[dict[str, Any]]:
    """Every descendant of ``pid``: its command line and the CPUs it may run on."""
    found: list[dict[str, Any]] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").iterdir():
            for child in (task / "children").read_text().split():
                status = dict(
                    line.split(":", 1)
                    for line in Path(f"/proc/{child}/status").read_text().splitlines()
                )
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
                found.append(
                    {
                        "pid": int(child),
                        "cmdline": [part.decode() for part in cmdline if part],
                        "cpus": status["Cpus_allowed_list"].strip(),
                    }
                )
                pending.append(int(child))
    return found


def identity(pid: int) -> dict[str, str]:
    """Who the kernel says process ``pid`` is: /proc/PID/status's ids (real, effective,
    saved, file system), groups, capability sets and no_new_privs, plus its cwd and HOME."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    fields = ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
    found = {name: " ".join(status[name].split()) for name in (*fields, "NoNewPrivs")}
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    home = [v[5:].decode() for v in environ if v.startswith(b"HOME=")]
    found.update(cwd=os.readlink(f"/proc/{pid}/cwd"), HOME=home[0] if home else "")
    return found


def interpreter(pid: int | str = "self") -> list[str]:
    """The executable process ``pid`` runs and the libpython it mapped: where the image user
    cannot read the interpreter's lib/, the loader quietly takes the system's libpython."""
    mapped = (line.split(maxsplit=5) for line in Path(f"/proc/{pid}/maps").read_text().splitlines())
    libraries = {fields[5] for fields in mapped if len(fields) == 6 and "/libpython" in fields[5]}
    return [os.readlink(f"/proc/{pid}/exe"), *sorted(libraries)]


def write_probe(drop: list[str], env: dict[str, str]) -> dict[str, str]:
    """As the image user, with the image's environment: creating a file in /, the usual
    scratch directories, the venv, its site-packages and the checkout (where bytecode
    would go), each answered with its errno name, or "written"."""
    import sysconfig

    places = ["/", "/tmp", "/var/tmp", "/dev/shm", sys.prefix, sysconfig.get_path("purelib")]
    places.append(str(ROOT))
    argv = [*drop, "python", "-c", WRITE_PROBE, *places]
    result = subprocess.run(argv, env=env, cwd="/", capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


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


def run(
    scenario: str, outer_namespace: str | None = None, pod: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``outer_namespace`` (the mount namespace the test runs in): run as the image user on
    a read-only root (read_only_root, drop_to); else as whoever runs this. ``pod`` (with
    ``outer_namespace``): what a Kubernetes pod adds, ``emptyDirs`` (mount path -> size in
    bytes) mounted on that root and ``env`` set after the image's."""
    from orders_aws.dynamodb import make_client
    from tests.aws.motoserver import MotoServer
    from tests.aws.support import FAKE_ENV, new_table

    _loopback_up()
    _, stages = parse()
    final = stages[-1]
    argv = final.all("ENTRYPOINT")[0].exec_form()
    env = image_env(final, str(Path(sys.executable).parent))
    drop: list[str] = []
    seen: dict[str, Any] = {"argv": argv}
    if outer_namespace is not None:  # before moto and the issuer: they need nothing writable
        seen["opened_up"] = read_only_root(*image_user(final), outer_namespace)
        drop = drop_to(*image_user(final))
        for mount_path, size in (pod or {}).get("emptyDirs", {}).items():
            seen.setdefault("bound_into_volumes", {})[mount_path] = scratch_volume(
                mount_path, int(size)
            )
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
    env.update((pod or {}).get("env", {}))
    seen["env"] = sorted(env)
    proc = subprocess.Popen(
        [*drop, *argv],
        env=env,
        cwd="/",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
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
        if proc.poll() is None and "listening on http://" in seen["startup"]:
            if outer_namespace is not None:  # setpriv and env have exec'd the ENTRYPOINT
                seen["identity"] = identity(proc.pid)
                seen["interpreter"] = {"entrypoint": interpreter(proc.pid), "here": interpreter()}
                seen["writable_mounts"] = [
                    m.point for m in visible_mounts(proc.pid) if "ro" not in m.options
                ]
                seen["writes"] = write_probe(drop, env)
            if pod is not None:
                count = int(pod["env"]["ORDERS_LOCAL_WORKERS"])
                seen["workers"] = _workers_settled(proc.pid, count)
                seen["scratch"] = {
                    str(path.relative_to("/")): sorted(p.name for p in path.iterdir())
                    for mount_path in pod.get("emptyDirs", {})
                    for path in Path(mount_path).iterdir()
                    if path.is_dir() and path.name.startswith("orders-local-")
                }
            check = subprocess.run([*drop, *healthcheck_command(final)], env=env, timeout=10)
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


def _workers_settled(supervisor: int, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The supervisor's worker processes once ``count`` of them have each settled on one
    CPU (a worker claims its CPU as it starts), or as they are when ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        workers = [
            p for p in processes_under(supervisor) if any("spawn" in a for a in p["cmdline"])
        ]
        pinned = [w for w in workers if w["cpus"].isdigit()]
        if len(pinned) >= count or time.monotonic() > deadline:
            return workers
        time.sleep(0.1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tests.deploy.container_image")
    parser.add_argument("scenario", choices=["jwt", "opt-out"])
    parser.add_argument(
        "--image-user",
        metavar="OUTER_MOUNT_NAMESPACE",
        help="readlink /proc/self/ns/mnt outside: the namespace that must not be remounted",
    )
    parser.add_argument(
        "--pod",
        metavar="JSON",
        help='with --image-user: {"emptyDirs": {PATH: BYTES}, "env": {NAME: VALUE}}',
    )
    options = parser.parse_args()
    pod = None if options.pod is None else json.loads(options.pod)
    print(json.dumps(run(options.scenario, options.image_user, pod)))
