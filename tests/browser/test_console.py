"""The console in a real browser, against ``orders-local serve`` on 127.0.0.1.

One server for the module, with a webhook sink on loopback that refuses connections at
first, and a relay that pauses 5 to 10 minutes after a failed delivery: so the first event
fails and stays failed until the console's redeliver asks again. The tests run in file
order; the last one brings the sink back.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.local.support import Client, ServerProcess
from tests.local.webhook import Webhook

pytestmark = pytest.mark.slow
expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed").expect

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
JAEGER = "http://localhost:16686/trace/{traceId}"


class Shop:
    """The server, its sink, and the orders made before the browser looks."""

    def __init__(self, tmp: Path) -> None:
        self.webhook = Webhook()  # down: its port refuses connections
        self.server = ServerProcess(
            "--db",
            str(tmp / "orders.db"),
            "--sink",
            f"webhook:{self.webhook.url}",
            "--relay-backoff-base",
            "600",
            "--relay-backoff-cap",
            "600",
            "--traces-ui-url",
            JAEGER,
        )
        self.url = f"http://127.0.0.1:{self.server.port}/console"
        self.client = Client(self.server.port)
        self.orders: list[str] = []
        for n, headers in enumerate(({"traceparent": TRACEPARENT}, {}, {"idempotency-key": "k"})):
            self.create(f"c-{n}", headers)
        self.confirm(self.orders[0])

    def create(self, customer: str, headers: dict[str, str] | None = None) -> str:
        body = b'{"items":[{"id":"sku-1","qty":2}],"customerId":"%s"}' % customer.encode()
        reply = self.client.request("POST", "/orders", body, headers)
        assert reply.status == 201, reply.body
        self.orders.append(reply.json()["orderId"])
        return self.orders[-1]

    def confirm(self, order_id: str) -> None:
        assert self.client.request("POST", f"/orders/{order_id}/confirm").status == 200

    def stop(self) -> None:
        self.client.close()
        self.server.stop()
        self.webhook.close()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    running = Shop(tmp_path_factory.mktemp("console"))
    try:
        yield running
    finally:
        running.stop()


def rows(page: Any, table: str) -> Any:
    return page.locator(f"#{table} tbody tr")


def show(page: Any, route: str) -> None:
    """Move the open console to ``route`` (``#/...``) as its links do: no reload."""
    page.evaluate("(hash) => { location.hash = hash; }", route)


def test_the_list_shows_created_orders_newest_first_and_refreshes_live(
    page: Any, shop: Shop, artifacts: Path
) -> None:
    page.goto(shop.url)
    links = page.locator("#orders-table tbody a")
    expect(links).to_have_text(shop.orders[::-1])
    expect(page.locator("#counts")).to_contain_text("2PENDING")
    expect(page.locator("#counts")).to_contain_text("1CONFIRMED")
    page.screenshot(path=artifacts / "orders-1280.png", full_page=True)

    newest = shop.create("c-live")  # while the page is open: it appears without a reload
    expect(links.first).to_have_text(newest)
    expect(links).to_have_count(4)

    page.select_option("#filters select[name=status]", "CONFIRMED")
    page.locator("#filters button[type=submit]").press("Enter")  # by keyboard
    expect(links).to_have_text([shop.orders[0]])
    page.fill("#filters input[name=customerId]", "c-live")
    page.select_option("#filters select[name=status]", "")
    page.locator("#filters input[name=customerId]").press("Enter")
    expect(links).to_have_text([newest])


def test_an_orders_page_shows_its_events_with_ids_and_delivery_states(
    page: Any, shop: Shop, artifacts: Path
) -> None:
    first = shop.orders[0]  # created (the outbox's first event: it failed), then confirmed
    page.goto(shop.url)
    link = page.get_by_role("link", name=first)
    link.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(f"#/orders/{first}$"))
    expect(page.locator("#order-title")).to_be_focused()
    entries = page.locator("#timeline > li")
    expect(entries).to_have_count(2)
    expect(page.locator("#timeline [data-event-id]")).to_have_text([f"{first}.v1", f"{first}.v2"])
    created, confirmed = entries.nth(0), entries.nth(1)
    expect(created.locator(".pill.failed")).to_have_text("failed")
    expect(created).to_contain_text("webhook unreachable")
    expect(created).to_contain_text("io.orderscore.order.create.v1")
    expect(confirmed.locator(".pill.pending")).to_have_text("pending")
    expect(confirmed).to_contain_text("io.orderscore.order.confirm.v1")
    trace = created.get_by_role("link", name=TRACE_ID)
    expect(trace).to_have_attribute("href", JAEGER.replace("{traceId}", TRACE_ID))
    page.screenshot(path=artifacts / "order-1280.png", full_page=True)

    keyed = shop.orders[2]
    show(page, f"#/orders/{keyed}")
    expect(page.locator("#order-id")).to_have_text(keyed)
    expect(page.locator("#timeline > li")).to_have_count(1)
    expect(page.locator("#timeline > li")).to_contain_text("Idempotency key")
    expect(page.locator("#timeline > li code").filter(has_text=re.compile("^k$"))).to_have_count(2)


def test_the_console_is_readable_at_phone_width(page: Any, shop: Shop, artifacts: Path) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(shop.url)
    expect(page.locator("#orders-table tbody a").first).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # no sideways scrolling: rows become labelled cards
    page.screenshot(path=artifacts / "orders-phone.png", full_page=True)
    show(page, f"#/orders/{shop.orders[0]}")
    expect(page.locator("#order-id")).to_have_text(shop.orders[0])
    expect(page.locator("#timeline > li")).to_have_count(2)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=artifacts / "order-phone.png", full_page=True)


def test_a_failed_delivery_is_redelivered_once_the_sink_is_back(
    page: Any, shop: Shop, artifacts: Path
) -> None:
    first = f"{shop.orders[0]}.v1"
    page.goto(f"{shop.url}#/outbox?state=failed")
    failed = rows(page, "outbox-table")
    expect(failed).to_have_count(1)
    expect(failed.first).to_contain_text(first)
    expect(failed.first.locator(".pill")).to_have_text("failed")
    expect(page.locator("#nav-failed")).to_have_text("1 failed")
    page.screenshot(path=artifacts / "outbox-failed-1280.png", full_page=True)
    assert shop.webhook.received() == []

    shop.webhook.open()  # the sink is back; the relay would sleep on for minutes
    page.get_by_role("button", name="Redeliver").click()
    expect(page.locator("#message")).to_contain_text(f"Redelivery of {first} recorded")
    expect(failed).to_have_text(["No failed events."])
    page.get_by_role("link", name="All undelivered").click()
    expect(page.locator("#outbox-caption")).to_have_text("Undelivered events, in commit order")
    expect(rows(page, "outbox-table")).to_have_text(["Every event is delivered."])
    expect(page.locator("#nav-failed")).to_be_hidden()
    page.screenshot(path=artifacts / "outbox-delivered-1280.png", full_page=True)
    received = shop.webhook.received()
    assert received[0] == first
    assert len(received) == len(set(received)) == 5  # 4 created, 1 confirmed: each once

    show(page, f"#/orders/{shop.orders[0]}")
    expect(page.locator("#order-id")).to_have_text(shop.orders[0])
    expect(page.locator("#timeline .pill.delivered")).to_have_count(2)
    expect(page.locator("#timeline > li").first).to_contain_text("redelivery asked")
