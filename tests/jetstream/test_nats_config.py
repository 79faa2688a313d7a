"""``--sink nats://...``: the spec grammar, credentials only from the environment, and clear
errors for everything else, before anything connects."""

from __future__ import annotations

from pathlib import Path

import pytest

from orders_local.sinks import check_sink_spec, sink_from_spec
from orders_nats import NatsConfig, NatsPublisher, SubjectTemplate


def test_the_defaults() -> None:
    config = NatsConfig.from_spec("nats://127.0.0.1", {})
    assert config.servers == ("nats://127.0.0.1:4222",)
    assert config.subject == SubjectTemplate("orders.events.{type}")
    assert (config.mode, config.stream, config.ack_timeout) == ("binary", None, 5.0)


def test_every_part_of_the_spec() -> None:
    config = NatsConfig.from_spec(
        "nats+structured://a:4223,[::1]:4224,b/shop.{subject}.{type}?stream=SHOP&tls=true&timeout=2.5",
        {},
    )
    assert config.servers == ("tls://a:4223", "tls://[::1]:4224", "tls://b:4222")
    assert config.subject.template == "shop.{subject}.{type}"
    assert (config.mode, config.stream, config.ack_timeout) == ("structured", "SHOP", 2.5)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("nats://user:secret@host:4222", "not in the spec"),
        ("nats://host:99999", "port"),
        ("nats://host:x", "port"),
        ("nats://:4222", "HOST[:PORT]"),
        ("nats+xml://host", "not a NATS sink"),
        ("nast://user:secret@host:4222", "not a NATS sink"),  # a typo must not echo it
        ("nats:/user:secret@host", "not a NATS sink"),
        ("nats://host?stream=has space", "stream name"),
        ("nats://host?retries=3", "unknown option"),
        ("nats://host?tls=yes", "tls=true"),
        ("nats://host?timeout=never", "timeout"),
        ("nats://host?timeout=0", "(0, 300]"),
        ("nats://host?timeout=nan", "(0, 300]"),
        ("nats://host/orders.{order}", "unknown placeholder"),
        ("nats://host/orders.*", "not a subject"),
        ("nats://host/orders..x", "not a subject"),
        ("nats://host/orders.{type", "not a subject"),
        ("nats://host/" + "x" * 300, "not a subject"),
    ],
)
def test_a_bad_spec_is_refused_saying_why(spec: str, says: str) -> None:
    with pytest.raises(ValueError) as raised:  # noqa: PT011 - the message is checked below
        NatsConfig.from_spec(spec, {})
    assert says in str(raised.value)
    assert "secret" not in str(raised.value)


def test_credentials_come_from_the_environment_and_never_show(tmp_path: Path) -> None:
    token = NatsConfig.from_spec("nats://h", {"ORDERS_NATS_TOKEN": "s3cr3t-token"})
    assert token.auth.token == "s3cr3t-token"
    assert "s3cr3t" not in repr(token)
    user = NatsConfig.from_spec(
        "nats://h", {"ORDERS_NATS_USER": "relay", "ORDERS_NATS_PASSWORD": "pa55word"}
    )
    assert (user.auth.user, user.auth.password) == ("relay", "pa55word")
    assert "pa55word" not in repr(user)
    creds = tmp_path / "relay.creds"
    creds.write_text("-----BEGIN NATS USER JWT-----\n...")
    assert NatsConfig.from_spec("nats://h", {"ORDERS_NATS_CREDS": str(creds)}).auth.creds_file


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"ORDERS_NATS_TOKEN": "t", "ORDERS_NATS_USER": "u"}, "set one NATS credential"),
        ({"ORDERS_NATS_PASSWORD": "p"}, "without ORDERS_NATS_USER"),
        ({"ORDERS_NATS_USER": "u"}, "without ORDERS_NATS_PASSWORD"),
        ({"ORDERS_NATS_CREDS": "/nonexistent/relay.creds"}, "cannot read"),
    ],
)
def test_credentials_that_do_not_add_up_are_refused(env: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        NatsConfig.from_spec("nats://h", env)


def test_the_sink_spec_builds_a_nats_publisher_without_connecting() -> None:
    pytest.importorskip("nats", reason="nats-py is not installed: the nats extra")
    check_sink_spec("nats://127.0.0.1:9/x.{type}")  # nothing listens there: fine until used
    publisher = sink_from_spec("nats+structured://127.0.0.1:9?stream=S")
    assert isinstance(publisher, NatsPublisher)
    assert publisher.config.mode == "structured"
    publisher.close()


def test_without_the_extra_the_sink_says_which_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "nats" else real(name, *a)
    )
    with pytest.raises(ValueError, match=r"orders-core\[nats\]"):
        check_sink_spec("nats://127.0.0.1:4222")
