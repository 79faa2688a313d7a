"""TLS is the URL's: ``sslmode=verify-full`` with ``sslrootcert`` against a server with a
certificate from a CA made here; a certificate from another CA is refused at startup."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pwd
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.local.support import ServerProcess

pytest.importorskip("psycopg")
x509 = pytest.importorskip("cryptography.x509", reason="needs cryptography (the jwt extra)")

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

pytestmark = pytest.mark.slow


def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _server_cert(
    ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    san = x509.SubjectAlternativeName(
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(san, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """(the server's URL without TLS options, our CA's file, another CA's file)."""
    from orders_postgres.testing import TestServer, Unavailable

    ca_key, ca = _ca("orders test CA")
    key, cert = _server_cert(ca_key, ca)
    server = TestServer()
    (server.root / "server.crt").write_bytes(_pem(cert))
    (server.root / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(server.root / "server.key", 0o600)
    if server.user is not None:
        uid, gid = pwd.getpwnam(server.user)[2:4]
        for name in ("server.crt", "server.key"):
            os.chown(server.root / name, uid, gid)
    server.settings.update(
        ssl="on",
        ssl_cert_file=str(server.root / "server.crt"),
        ssl_key_file=str(server.root / "server.key"),
    )
    try:
        server.start()
    except Unavailable as exc:
        pytest.skip(f"no PostgreSQL with TLS here: {exc}")
    here = tmp_path_factory.mktemp("tls")
    (here / "ca.pem").write_bytes(_pem(ca))
    (here / "other-ca.pem").write_bytes(_pem(_ca("someone else")[1]))
    try:
        yield server.url, here / "ca.pem", here / "other-ca.pem"
    finally:
        server.destroy()


def test_verify_full_with_our_ca_connects_over_tls(tls: tuple[str, Path, Path]) -> None:
    from orders_postgres.backend import backend

    url, ca, _ = tls
    built = backend({"database_url": f"{url}?sslmode=verify-full&sslrootcert={ca}"})
    try:
        store = built.store
        from orders_postgres.store import PostgresStore

        assert isinstance(store, PostgresStore)
        query = "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        row = store.database.run(lambda conn: conn.execute(query).fetchone(), read=True)
        assert row is not None
        assert row[0] is True
        assert str(row[1]).startswith("TLS")
    finally:
        built.close()


def test_a_certificate_from_another_ca_is_refused_at_startup(
    tls: tuple[str, Path, Path],
) -> None:
    from orders_postgres.backend import backend

    url, _, other = tls
    with pytest.raises(ValueError, match=r"cannot connect to PostgreSQL 127\.0\.0\.1") as refused:
        backend({"database_url": f"{url}?sslmode=verify-full&sslrootcert={other}"})
    assert "certificate verify failed" in str(refused.value)
    assert url.split(":")[2].split("@")[0] not in str(refused.value)  # the password


def test_serve_runs_every_session_over_tls(tls: tuple[str, Path, Path], tmp_path: Path) -> None:
    import psycopg

    url, ca, _ = tls
    tls_url = f"{url}?sslmode=verify-full&sslrootcert={ca}&application_name=orders-tls"
    sink = f"file:{tmp_path / 'events.jsonl'}"
    server = ServerProcess(
        "--store", "postgres", "--sink", sink, env={"ORDERS_DATABASE_URL": tls_url}
    )
    try:
        client = server.client()
        body = b'{"items":[{"id":"sku-1","qty":1}]}'
        assert client.request("POST", "/orders", body).status == 201
        client.close()
        sessions: list[tuple[object, ...]] = []
        with psycopg.connect(url, autocommit=True) as conn:
            for _ in range(100):  # the pool's two, the relay's lock, LISTEN
                sessions = conn.execute(
                    "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)"
                    " WHERE a.application_name = 'orders-tls'"
                ).fetchall()
                if len(sessions) == 4:
                    break
                time.sleep(0.05)
    finally:
        code, err = server.stop()
    assert code == 0, err
    assert len(sessions) == 4
    assert all(ssl for (ssl,) in sessions)
