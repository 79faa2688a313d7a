"""The CloudEvents webhook against a real HTTP server on loopback: the publisher contract in
binary and structured mode; only a 2xx is delivery; a redirect is refused, not followed; a
receiver that hangs or trickles is cut off at the deadline; the auth header comes from the
environment, checked at configuration time, and never shows in an error or a log."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orders_core.application import EventPublisher
from orders_core.testing.publisher_contract import PublisherContract, cloudevent, order_events
from orders_local.sinks import PublishFailed, WebhookSink, check_sink_spec, sink_from_spec
from orders_local.webhook import MAX_ANSWER, AuthHeader, TokenFile, auth_from_env
from tests.local.ce_receiver import Receiver

SECRET = "s3cr3t-Sas-Key-0123456789"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


# -- the contract, in both content modes ---------------------------------------------------


class _WebhookContract(PublisherContract):
    mode = "binary"

    @pytest.fixture(autouse=True)
    def _receiver(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def make_publisher(self, tmp_path: Path) -> EventPublisher:
        return WebhookSink(self.receiver.url, mode=self.mode, timeout=2)

    def received(self, publisher: EventPublisher) -> list[dict[str, Any]]:
        return self.receiver.received()

    @contextlib.contextmanager
    def sink_down(self, publisher: EventPublisher) -> Iterator[None]:
        self.receiver.status = 503
        try:
            yield
        finally:
            self.receiver.status = 202


class TestWebhookBinaryMode(_WebhookContract):
    pass


class TestWebhookStructuredMode(_WebhookContract):
    mode = "structured"


def test_binary_mode_maps_attributes_to_percent_encoded_headers(receiver: Receiver) -> None:
    (event,) = order_events(1)
    event = replace(event, source='urn:orders core:€ "x" 100%')
    WebhookSink(receiver.url).publish([event])
    (request,) = receiver.requests
    assert request.headers["ce-source"] == "urn:orders%20core:%E2%82%AC%20%22x%22%20100%25"
    assert request.headers["ce-id"] == event.id
    assert request.headers["content-type"] == "application/json"
    assert "ce-datacontenttype" not in request.headers  # HTTP maps it to Content-Type
    assert request.body == event.data_json
    assert request.cloudevent() == cloudevent(event)


def test_structured_mode_posts_the_json_event_format(receiver: Receiver) -> None:
    (event,) = order_events(1)
    WebhookSink(receiver.url, mode="structured").publish([event])
    (request,) = receiver.requests
    assert request.headers["content-type"] == "application/cloudevents+json; charset=utf-8"
    assert not any(name.startswith("ce-") for name in request.headers)
    assert request.body == event.to_structured_json()


def test_eventarc_mode_wraps_the_structured_event_for_the_publish_call(receiver: Receiver) -> None:
    (event,) = order_events(1)
    WebhookSink(receiver.url, mode="eventarc").publish([event])
    (request,) = receiver.requests
    assert request.headers["content-type"] == "application/json"
    assert json.loads(json.loads(request.body)["jsonMessage"]) == cloudevent(event)


# -- what counts as delivered --------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_any_2xx_is_delivery(receiver: Receiver, status: int) -> None:
    receiver.status = status
    WebhookSink(receiver.url).publish(order_events(2))
    assert len(receiver.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 429, 500, 502, 503])
def test_4xx_and_5xx_fail_and_say_how_far_the_batch_got(receiver: Receiver, status: int) -> None:
    receiver.status, receiver.fail_from = status, 1
    receiver.body = b'{"error":{"code":"Unauthorized","message":"no such topic"}}'
    with pytest.raises(PublishFailed) as raised:
        WebhookSink(receiver.url).publish(order_events(3))
    assert raised.value.delivered == 1  # the first went out; the third was never tried
    assert len(receiver.requests) == 2
    assert f"answered {status}" in str(raised.value)
    assert "no such topic" in str(raised.value)  # what the receiver said, for the operator


@pytest.fixture
def raw() -> Iterator[tuple[list[bytes], str]]:
    """A receiver that reads each whole request, writes the bytes it is told, and closes."""
    answer = [b""]
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(head.lower().partition(b"content-length:")[2].split(b"\r\n")[0])
                while len(body) < length:
                    body += conn.recv(65536)
                conn.sendall(answer[0])

    threading.Thread(target=run, daemon=True).start()
    try:
        yield answer, f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        listener.close()


@pytest.mark.parametrize(
    ("truncated", "says"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Le", "within the header section"),
        (b"HTTP/1.1 200 OK\r\n", "within the header section"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "after 3 of 10 body bytes"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nabc", "within the body"),
    ],
    ids=["mid-headers", "status-line-only", "short-body", "short-chunk"],
)
def test_a_2xx_cut_off_before_its_end_is_not_delivery(
    raw: tuple[list[bytes], str], truncated: bytes, says: str
) -> None:
    """RFC 9112 section 8: a response closed before its header section or its declared
    body ended is incomplete, whatever its status line said."""
    answer, url = raw
    answer[0] = truncated
    sink = WebhookSink(url, timeout=2)
    with pytest.raises(PublishFailed, match=f"cut off: .*{says}"):
        sink.publish(order_events(1))
    answer[0] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    sink.publish(order_events(1))  # a complete 200 still is delivery, on a new connection
    sink.close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_failure_and_is_not_followed(receiver: Receiver, status: int) -> None:
    receiver.status, receiver.location = status, receiver.url.replace("/hook", "/elsewhere")
    with pytest.raises(
        PublishFailed, match=rf"answered {status} \(redirect to .*/elsewhere, not followed\)"
    ):
        WebhookSink(receiver.url).publish(order_events(1))
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_one_kept_alive_connection_carries_every_event(receiver: Receiver) -> None:
    sink = WebhookSink(receiver.url)
    for _ in range(5):
        sink.publish(order_events(4))
    assert len(receiver.requests) == 20
    assert receiver.connections == 1
    sink.close()


def test_a_connection_the_receiver_closed_is_replaced_without_a_failure(receiver: Receiver) -> None:
    receiver.behaviour = "close"  # closes after each answer, without Connection: close
    sink = WebhookSink(receiver.url)
    for start in range(3):
        sink.publish(order_events(1, start=start))
        time.sleep(0.05)  # the close has arrived: the next request finds the socket dead
    assert len(receiver.requests) == 3
    sink.close()


def test_a_sink_dropped_without_close_lets_go_of_its_socket_and_thread(
    receiver: Receiver,
) -> None:
    import gc
    import threading
    import warnings

    def deadline_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "webhook-deadline" and t.is_alive()}

    before = deadline_threads()  # other tests' sinks may still be letting go of theirs
    sink = WebhookSink(receiver.url)
    sink.publish(order_events(1))
    (ours,) = deadline_threads() - before
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del sink
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    ours.join(2)
    assert not ours.is_alive()


# -- bounded ------------------------------------------------------------------------------


@pytest.mark.parametrize("behaviour", ["hang", "trickle"])
def test_a_receiver_that_hangs_or_trickles_is_cut_off_at_the_deadline(
    receiver: Receiver, behaviour: str
) -> None:
    """``trickle`` sends a byte every 0.1 s: each read is well within any socket timeout,
    so only a deadline on the whole request ends it."""
    receiver.behaviour = behaviour
    sink = WebhookSink(receiver.url, timeout=1)
    started = time.monotonic()
    with pytest.raises(PublishFailed, match="no answer within 1 s"):
        sink.publish(order_events(2))
    assert time.monotonic() - started < 2
    receiver.release.set()
    receiver.behaviour = "answer"
    sink.publish(order_events(1, start=9))  # a new connection; the sink still works
    sink.close()


def test_nothing_listening_fails_fast() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connections are refused
        started = time.monotonic()
        with pytest.raises(PublishFailed, match="unreachable"):
            WebhookSink(f"http://127.0.0.1:{port}/hook", timeout=2).publish(order_events(1))
        assert time.monotonic() - started < 1


def test_a_huge_header_value_is_a_bounded_failure(receiver: Receiver) -> None:
    """The receiver refuses the header (431) and closes, maybe while the request is still
    being sent (a broken pipe): either way a failed attempt, at once, and the sink recovers."""
    (event,) = order_events(1)
    huge = replace(event, tracestate="k=" + "v" * 100_000)
    sink = WebhookSink(receiver.url, timeout=2)
    started = time.monotonic()
    with pytest.raises(
        PublishFailed, match=r"answered 431|unreachable: (BrokenPipe|ConnectionReset)"
    ):
        sink.publish([huge])
    assert time.monotonic() - started < 2
    sink.publish([event])
    assert [r.headers["ce-id"] for r in receiver.requests if r.answered == 202] == [event.id]
    sink.close()


# -- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line", [f"aeg-sas-key: {SECRET}", f"Authorization: Bearer {SECRET}", f"X-Api-Key:{SECRET}"]
)
def test_the_auth_header_is_sent_as_configured(receiver: Receiver, line: str) -> None:
    auth = AuthHeader.parse(line)
    sink = WebhookSink(receiver.url, auth=auth)
    sink.publish(order_events(1))
    (request,) = receiver.requests
    assert request.headers[auth.name.lower()] == line.partition(":")[2].strip()
    assert SECRET not in repr(sink) + repr(auth)


def test_an_echoed_secret_is_blanked_out_of_the_error_the_outbox_and_the_logs(
    receiver: Receiver, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from orders_core.application import OutboxRelay
    from orders_local.sqlite import SQLiteStore
    from tests.local.test_relay_retries import place

    receiver.status = 401
    receiver.body = f"key {SECRET} is not valid for this topic".encode()
    sink = WebhookSink(receiver.url, auth=AuthHeader.parse(f"Authorization: Bearer {SECRET}"))
    with pytest.raises(PublishFailed) as raised:
        sink.publish(order_events(1))
    assert SECRET not in str(raised.value)
    assert "key *** is not valid" in str(raised.value)
    store = SQLiteStore(tmp_path / "o.db")
    place(store, "o-1")
    assert OutboxRelay(store, sink).run_once() == 0  # the relay records the failure
    (entry,) = store.outbox_entries(pending_only=True)
    assert "answered 401" in str(entry["lastError"])
    assert SECRET not in str(entry) + caplog.text
    store.close()


LONG_TOKEN = "ya29." + "A1b2C3d4E5" * 30  # a Google access token runs to hundreds of characters


@pytest.mark.parametrize(
    "body",
    [
        "x" * 120 + " you sent Authorization: Bearer " + LONG_TOKEN,  # past where blanking ran
        "x" * 150 + " token " + LONG_TOKEN[:100] + " (truncated)",  # cut by the 200 shown
        "\0" * (MAX_ANSWER - 20) + LONG_TOKEN,  # cut where reading stops; the rest blank
    ],
    ids=["whole-token-past-400", "prefix-cut-at-200", "prefix-cut-at-max-answer"],
)
def test_a_long_echoed_token_is_blanked_however_the_excerpt_cuts_it(
    receiver: Receiver, body: str
) -> None:
    receiver.status, receiver.body = 401, body.encode()
    sink = WebhookSink(receiver.url, auth=AuthHeader("Authorization", f"Bearer {LONG_TOKEN}"))
    with pytest.raises(PublishFailed, match=r"answered 401: .*\*\*\*") as raised:
        sink.publish(order_events(1))
    assert LONG_TOKEN[:8] not in str(raised.value)
    sink.close()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (f"Authorization: Bearer {SECRET}\r\nX-Injected: 1", "CR, LF or NUL"),
        (f"Authorization: Bearer {SECRET}\nX-Injected: 1", "CR, LF or NUL"),
        (f"aeg-sas-key: {SECRET}\x00", "CR, LF or NUL"),
        (f"aeg-sas-key: {SECRET}\x1b[2J", "control or non-ASCII"),
        (f"aeg-sas-key: {SECRET}€", "control or non-ASCII"),
        ("aeg-sas-key: " + "k" * 9000, "over 8192"),
        ("aeg-sas-key:   ", "empty"),
        (f"no colon {SECRET}", "Name: value"),
        (f"bad name: {SECRET}", "Name: value"),
        (f"Content-Type: {SECRET}", "sets itself"),
        (f"ce-id: {SECRET}", "sets itself"),
    ],
)
def test_a_bad_auth_header_is_refused_saying_why_not_what(value: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as raised:
        AuthHeader.parse(value)
    assert SECRET not in str(raised.value)


def test_the_environments_auth_header_is_checked_with_the_sink_spec(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``orders-local serve`` checks the spec at start: a bad header stops it there, not in
    the relay process later."""
    monkeypatch.setenv("ORDERS_WEBHOOK_AUTH_HEADER", f"Authorization: Bearer {SECRET}\rX: 1")
    with pytest.raises(ValueError, match=r"ORDERS_WEBHOOK_AUTH_HEADER: .*CR, LF") as raised:
        check_sink_spec("webhook:http://127.0.0.1:9/hook")
    assert SECRET not in str(raised.value)
    monkeypatch.setenv("ORDERS_WEBHOOK_AUTH_HEADER", f"aeg-sas-key: {SECRET}")
    sink = sink_from_spec("webhook+structured:http://127.0.0.1:9/hook")
    assert isinstance(sink, WebhookSink)
    assert isinstance(sink.auth, AuthHeader)
    assert sink.auth.name == "aeg-sas-key"


def test_a_token_file_is_read_again_when_it_changes(receiver: Receiver, tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first-token\n")
    sink = WebhookSink(receiver.url, auth=TokenFile(str(path)))
    sink.publish(order_events(1))
    path.write_text("second-token\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # a later mtime, surely
    sink.publish(order_events(1, start=1))
    path.write_text("broken\ntoken\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
    with pytest.raises(PublishFailed, match="auth unavailable"):
        sink.publish(order_events(1, start=2))
    assert [r.headers["authorization"] for r in receiver.requests] == [
        "Bearer first-token",
        "Bearer second-token",
    ]


def test_auth_settings_that_do_not_add_up_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        auth_from_env({"ORDERS_WEBHOOK_AUTH_HEADER": "a: b", "ORDERS_WEBHOOK_TOKEN_FILE": "f"})
    with pytest.raises(ValueError, match="cannot read"):
        auth_from_env({"ORDERS_WEBHOOK_TOKEN_FILE": str(tmp_path / "missing")})
    assert auth_from_env({}) is None


# -- the --sink grammar --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "mode"),
    [
        ("webhook:http://127.0.0.1:9/h", "binary"),
        ("webhook+binary:http://127.0.0.1:9/h", "binary"),
        (
            "webhook+structured:https://topic.westus2-1.eventgrid.azure.net/api/events?api-version=2018-01-01",
            "structured",
        ),
        ("webhook+eventarc:https://eventarcpublishing.googleapis.com/v1/b:publish", "eventarc"),
    ],
)
def test_webhook_specs(spec: str, mode: str) -> None:
    sink = sink_from_spec(spec)
    assert isinstance(sink, WebhookSink)
    assert sink.mode == mode


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("webhook+xml:http://h/", "unknown sink"),
        ("webhook:ftp://h/", "http(s)"),
        ("webhook:http:///path", "http(s)"),
        (f"webhook:https://user:{SECRET}@h/", "carries credentials"),
        ("webhook:http://h:99999/", "out of range"),
        ("nats:/h", "unknown sink"),
    ],
)
def test_bad_sink_specs_say_why(spec: str, says: str) -> None:
    with pytest.raises(ValueError, match=None) as raised:  # noqa: PT011 - checked below
        check_sink_spec(spec)
    assert says in str(raised.value)
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("webhook:htps://user:hunter2@example.com/h", "'htps://***@example.com/h'"),  # typo
        ("webhook:http://user:hunter2@/h", "'http://***@/h'"),  # no host
        ("webhook:http:/user:hunter2@example.com/h", "'http:/***@example.com/h'"),  # no //
        ("webhook:user:hunter2@example.com/h", "'***@example.com/h'"),  # no scheme
        ("webhook:http://user:hunter2/x@example.com/h", "port out of range or not a number"),
        ("webhooks:https://user:hunter2@example.com/h", "unknown sink '***@example.com/h'"),
    ],
)
def test_a_refused_url_never_echoes_its_password(spec: str, says: str) -> None:
    """What precedes the URL's last @ is blanked wherever it is quoted: a typo must not put
    the password on stderr (serve's usage error)."""
    with pytest.raises(ValueError, match=None) as raised:  # noqa: PT011 - checked below
        check_sink_spec(spec)
    assert says in str(raised.value)
    assert "hunter2" not in str(raised.value)
