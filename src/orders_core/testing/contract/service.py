"""Idempotency, optimistic concurrency and the order lifecycle, through the service and
:class:`~orders_core.edges.http.HttpApi`: what every store must make true under real callers."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

import pytest

from orders_core.application import (
    CANCEL,
    CONFIRM,
    CREATE,
    FULFILL,
    Command,
    CommandResult,
    Deadline,
    OrderService,
    OrderStore,
    Principal,
    event_key,
    http_key,
)
from orders_core.domain import OrderStatus, event_id
from orders_core.edges.http import HttpApi, HttpRequest, HttpResponse
from orders_core.errors import (
    ConcurrencyConflict,
    DeadlineExceeded,
    IdempotencyKeyReused,
    InvalidTransition,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from orders_core.testing.clock import FakeClock
from orders_core.testing.contract._base import (
    ADMIN,
    ALICE,
    BOB,
    CREATE_BODY,
    RACERS,
    TRACEPARENT,
    ContractBase,
    run_concurrently,
)


class ServiceCases(ContractBase):
    """Cases that drive the store through :class:`~orders_core.application.OrderService`, HTTP."""

    # -- idempotency through the service -----------------------------------------------

    def test_a_repeat_replays_the_first_answer_byte_for_byte(
        self, api: HttpApi, store: OrderStore, clock: FakeClock
    ) -> None:
        first = self._post(api, "/orders", CREATE_BODY, idempotency_key="key-1")
        clock.advance(timedelta(minutes=5))
        again = self._post(api, "/orders", CREATE_BODY, idempotency_key="key-1")
        assert first.status == again.status == 201
        assert again.body == first.body
        assert again.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert len(store.list_by_customer("cust-1").orders) == 1
        assert len(self.committed_events(store, first.json()["orderId"])) == 1

    def test_the_same_key_with_another_payload_is_422_and_changes_nothing(
        self, api: HttpApi, store: OrderStore
    ) -> None:
        self._post(api, "/orders", CREATE_BODY, idempotency_key="key-1")
        other = CREATE_BODY.replace(b'"qty":2', b'"qty":3')
        response = self._post(api, "/orders", other, idempotency_key="key-1")
        assert response.status == 422
        assert response.json()["type"].endswith("idempotency-key-reused")
        assert len(store.list_by_customer("cust-1").orders) == 1

    def test_keys_are_scoped_per_principal(self, api: HttpApi, store: OrderStore) -> None:
        def post(principal: Principal) -> HttpResponse:
            headers = {"content-type": "application/json", "idempotency-key": "shared"}
            request = HttpRequest("POST", "/orders", headers, body=CREATE_BODY, principal=principal)
            return api.handle(request)

        alice, bob = post(ALICE), post(BOB)
        assert alice.status == bob.status == 201
        assert alice.json()["orderId"] != bob.json()["orderId"]
        assert "idempotent-replayed" not in bob.headers
        assert len(store.list_by_customer("cust-1").orders) == 2

    def test_a_record_expires_after_its_ttl(
        self, api: HttpApi, store: OrderStore, clock: FakeClock
    ) -> None:
        first = self._post(api, "/orders", CREATE_BODY, idempotency_key="key-1")
        clock.advance(timedelta(hours=24, seconds=1))
        later = self._post(api, "/orders", CREATE_BODY, idempotency_key="key-1")
        assert later.status == 201
        assert later.json()["orderId"] != first.json()["orderId"]

    def test_concurrent_duplicates_make_one_order_and_equal_answers(
        self, api: HttpApi, store: OrderStore
    ) -> None:
        results = run_concurrently(
            RACERS, lambda _: self._post(api, "/orders", CREATE_BODY, idempotency_key="race")
        )
        responses = [r for r in results if isinstance(r, HttpResponse)]
        assert len(responses) == RACERS, results
        assert {r.status for r in responses} == {201}
        assert len({r.body for r in responses}) == 1
        assert sum("idempotent-replayed" not in r.headers for r in responses) == 1
        orders = store.list_by_customer("cust-1").orders
        assert len(orders) == 1
        assert len(self.committed_events(store, orders[0].order_id)) == 1

    def test_a_redelivered_cloudevent_has_no_second_effect(
        self, service: OrderService, store: OrderStore
    ) -> None:
        command = Command(
            type=CREATE,
            source="urn:test:queue",
            id="evt-1",
            data=json.loads(CREATE_BODY),
        )
        key = event_key(command.source, command.id)
        results = [service.handle(command, idempotency_key=key) for _ in range(3)]
        assert [r.replayed for r in results] == [False, True, True]
        assert len({r.body for r in results}) == 1
        assert len(store.list_by_customer("cust-1").orders) == 1

    # -- optimistic concurrency --------------------------------------------------------

    def test_concurrent_confirms_with_one_etag_let_exactly_one_win(
        self, api: HttpApi, store: OrderStore
    ) -> None:
        created = self._post(api, "/orders", CREATE_BODY)
        order_id = created.json()["orderId"]
        results = run_concurrently(
            RACERS,
            lambda _: self._post(
                api, f"/orders/{order_id}/confirm", if_match=created.headers["etag"]
            ),
        )
        statuses = sorted(r.status for r in results if isinstance(r, HttpResponse))
        assert statuses == [200] + [412] * (RACERS - 1), results
        order = store.get(order_id)
        assert order is not None
        assert (order.status, order.version) == (OrderStatus.CONFIRMED, 2)
        assert len(self.committed_events(store, order_id)) == 2

    @pytest.mark.parametrize("if_match", [False, True], ids=["plain", "if-match"])
    @pytest.mark.parametrize(
        "when", ["after-the-load", "before-its-commit"], ids=["after-the-load", "before-commit"]
    )
    def test_a_duplicate_whose_twin_commits_first_replays_it(
        self,
        service: OrderService,
        store: OrderStore,
        clock: FakeClock,
        when: str,
        if_match: bool,
    ) -> None:
        """At-least-once delivery: two copies of one confirm run at once, and the first
        commits while the second is under way: after the second loaded the order, or once
        it has decided, right before its commit, which then fails its version check and
        meets the first's record in its key check. Either way the second replays the
        first's answer: no 409, and no 412 for the version both copies expected, which a
        push endpoint would dead-letter as poison."""
        created = service.handle(Command(CREATE, "t", "c", json.loads(CREATE_BODY)))
        data: dict[str, Any] = {"orderId": created.order_id}
        if if_match:
            data["expectedVersion"] = created.version
        confirm = Command(CONFIRM, "urn:payments", "pay-2", data)
        key = event_key(confirm.source, confirm.id)
        first: list[Any] = []

        def twin() -> None:
            first.append(service.handle(confirm, idempotency_key=key))

        raced = (
            _twin_commits_after(store, "get", twin)
            if when == "after-the-load"
            else _twin_commits_before(store, "commit", twin)
        )
        second = OrderService(raced, clock=clock).handle(confirm, idempotency_key=key)
        (won,) = first
        assert (won.replayed, second.replayed) == (False, True)
        assert (second.status, second.body) == (won.status, won.body)
        order = store.get(created.order_id)
        assert order is not None
        assert (order.status, order.version) == (OrderStatus.CONFIRMED, 2)
        assert len(self.committed_events(store, created.order_id)) == 2

    @pytest.mark.parametrize("intruder", [BOB, ADMIN], ids=["another-tenant", "an-admin"])
    def test_another_principal_racing_with_the_same_key_gets_no_replay_of_it(
        self, service: OrderService, store: OrderStore, clock: FakeClock, intruder: Principal
    ) -> None:
        """Keys are scoped by principal: someone who sends Alice's key for Alice's order
        while her confirm commits gets his own answer (404 for Bob, who may not see the
        order; 409 for an admin, who finds it confirmed), never her recorded one. Her
        confirm commits right after his first read, the order's load (a keyed change reads
        its key only once it has decided)."""
        created = service.handle(
            Command(CREATE, "t", "c", json.loads(CREATE_BODY)), principal=ALICE
        )
        key = http_key("alices-key")
        confirm = Command(CONFIRM, "t", "alices-key", {"orderId": created.order_id})

        def twin() -> None:
            service.handle(confirm, principal=ALICE, idempotency_key=key)

        racing = OrderService(_twin_commits_after(store, "get", twin), clock=clock)
        with pytest.raises(NotFound if intruder is BOB else InvalidTransition):
            racing.handle(confirm, principal=intruder, idempotency_key=key)
        order = store.get(created.order_id)
        assert order is not None
        assert (order.status, order.version, order.owner) == (
            OrderStatus.CONFIRMED,
            2,
            ALICE.id,
        )

    def test_a_twin_with_another_payload_under_the_key_is_422_as_one_after_the_other(
        self, service: OrderService, store: OrderStore, clock: FakeClock
    ) -> None:
        """A cancel under the key commits after a confirm under the same key has decided,
        right before the confirm's commit: the confirm is told its key was used for
        something else, as it would be had it come second, not 409 for the order it then
        finds cancelled."""
        created = service.handle(Command(CREATE, "t", "c", json.loads(CREATE_BODY)))
        key = event_key("urn:payments", "pay-3")
        target = {"orderId": created.order_id}
        cancel = Command(CANCEL, "urn:payments", "pay-3", {**target, "reason": "x"})
        confirm = Command(CONFIRM, "urn:payments", "pay-3", target)

        def twin() -> None:
            service.handle(cancel, idempotency_key=key)

        racing = OrderService(_twin_commits_before(store, "commit", twin), clock=clock)
        with pytest.raises(IdempotencyKeyReused):
            racing.handle(confirm, idempotency_key=key)
        order = store.get(created.order_id)
        assert order is not None
        assert (order.status, order.version) == (OrderStatus.CANCELLED, 2)

    def test_concurrent_transitions_without_etag_never_double_apply(
        self, service: OrderService, store: OrderStore
    ) -> None:
        created = service.handle(Command(CREATE, "t", "c", json.loads(CREATE_BODY)))
        results = run_concurrently(
            RACERS,
            lambda i: service.handle(
                Command(CONFIRM, "t", f"confirm-{i}", {"orderId": created.order_id})
            ),
        )
        wins = [r for r in results if not isinstance(r, BaseException)]
        losses = [r for r in results if isinstance(r, BaseException)]
        assert len(wins) == 1
        assert all(isinstance(e, InvalidTransition | ConcurrencyConflict) for e in losses), losses
        order = store.get(created.order_id)
        assert order is not None
        assert order.version == 2

    # -- lifecycle and bad input -------------------------------------------------------

    def test_the_full_lifecycle_emits_one_event_per_transition(
        self, service: OrderService, store: OrderStore
    ) -> None:
        created = service.handle(Command(CREATE, "t", "1", json.loads(CREATE_BODY)))
        oid = created.order_id
        service.handle(Command(CONFIRM, "t", "2", {"orderId": oid}))
        done = service.handle(Command(FULFILL, "t", "3", {"orderId": oid}))
        assert json.loads(done.body)["status"] == "FULFILLED"
        with pytest.raises(InvalidTransition):
            service.handle(Command(CANCEL, "t", "4", {"orderId": oid}))
        types = [e.type for e in self.committed_events(store, oid)]
        assert types == [
            "io.orderscore.order.created.v1",
            "io.orderscore.order.confirmed.v1",
            "io.orderscore.order.fulfilled.v1",
        ]

    def test_a_stale_if_match_is_412_and_changes_nothing(
        self, api: HttpApi, store: OrderStore
    ) -> None:
        oid = self._post(api, "/orders", CREATE_BODY).json()["orderId"]
        assert self._post(api, f"/orders/{oid}/confirm", if_match='"1"').status == 200
        response = self._post(api, f"/orders/{oid}/cancel", if_match='"1"')
        assert response.status == 412
        order = store.get(oid)
        assert order is not None
        assert order.status is OrderStatus.CONFIRMED

    @pytest.mark.parametrize(
        "data",
        [
            {"items": []},
            {"items": [{"id": "sku-1", "qty": 0}]},
            {"items": [{"id": "bad sku!", "qty": 1}]},
            {"items": [{"id": "sku-1", "qty": 1}], "surprise": True},
        ],
    )
    def test_invalid_commands_change_nothing(
        self, service: OrderService, store: OrderStore, data: dict[str, Any]
    ) -> None:
        with pytest.raises(ValidationFailed):
            service.handle(Command(CREATE, "t", "bad", {**data, "customerId": "cust-1"}))
        assert store.list_by_customer("cust-1").orders == []

    @pytest.mark.parametrize(
        ("source", "event_id_", "subject"),
        [("urn:\ud800", "e-1", None), ("urn:q", "e-\udc80", None), ("urn:q", "e-2", "\ud800")],
    )
    def test_a_cloudevent_attribute_that_is_not_unicode_text_is_400_and_writes_nothing(
        self, api: HttpApi, store: OrderStore, source: str, event_id_: str, subject: str | None
    ) -> None:
        """JSON allows a lone surrogate (``\\ud800``); no store can write one (UTF-8 has no
        code for it): refused before the store, the same on every store."""
        attributes = {"specversion": "1.0", "id": event_id_, "source": source, "type": CREATE}
        if subject is not None:
            attributes["subject"] = subject
        event = {**attributes, "data": json.loads(CREATE_BODY)}
        body = json.dumps(event).encode()  # ensure_ascii: the surrogate as \\udXXX escapes
        headers = {"content-type": "application/cloudevents+json"}
        response = api.handle(HttpRequest("POST", "/events", headers, body=body))
        assert response.status == 400, response.body
        assert b"Unicode text" in response.body
        assert store.list_by_customer("cust-1").orders == []

    def test_an_owner_id_of_the_longest_allowed_size_is_kept_and_one_byte_more_is_400(
        self, api: HttpApi, store: OrderStore
    ) -> None:
        """An incompressible principal id of MAX_OWNER_BYTES is an order's owner on every
        store (PostgreSQL indexes it beside the customer id); a byte more is a client's
        error, never the 503 an index's size limit gave, to be retried for ever."""
        import os

        from orders_core.application._service import MAX_OWNER_BYTES

        issuer = "https://issuer.test/"
        prefix = len(Principal.jwt(issuer, "").id)
        subject = os.urandom(MAX_OWNER_BYTES).hex()[: MAX_OWNER_BYTES - prefix]
        longest = Principal.jwt(issuer, subject)
        assert len(longest.id.encode()) == MAX_OWNER_BYTES
        created = self._post(api, "/orders", CREATE_BODY, principal=longest)
        assert created.status == 201, created.body
        order_id = created.json()["orderId"]
        read = api.handle(HttpRequest("GET", f"/orders/{order_id}", {}, principal=longest))
        assert read.status == 200
        (listed,) = store.list_by_customer("cust-1", owner=longest.id).orders
        assert listed.order_id == order_id
        too_long = Principal.jwt(issuer, subject + "a")
        refused = self._post(api, "/orders", CREATE_BODY, principal=too_long)
        assert refused.status == 400, refused.body
        wide = Principal.jwt(issuer, "\u00e9" * ((MAX_OWNER_BYTES - prefix) // 2 + 1))
        assert len(wide.id) < MAX_OWNER_BYTES < len(wide.id.encode())
        assert self._post(api, "/orders", CREATE_BODY, principal=wide).status == 400
        assert (
            self._post(
                api, "/orders", CREATE_BODY, principal=Principal.jwt(issuer, "a\x00b")
            ).status
            == 400
        )
        assert len(store.list_by_customer("cust-1").orders) == 1

    def test_an_expired_deadline_starts_nothing(
        self, service: OrderService, store: OrderStore
    ) -> None:
        command = Command(CREATE, "t", "late", json.loads(CREATE_BODY))
        with pytest.raises(DeadlineExceeded):
            service.handle(command, deadline=Deadline.after(-1))
        assert store.list_by_customer("cust-1").orders == []

    def test_events_carry_the_commands_trace_context(
        self, service: OrderService, store: OrderStore
    ) -> None:
        command = Command(CREATE, "t", "traced", json.loads(CREATE_BODY), traceparent=TRACEPARENT)
        result = service.handle(command)
        (event,) = self.committed_events(store, result.order_id)
        assert event.traceparent is not None
        assert event.traceparent.split("-")[1] == TRACEPARENT.split("-")[1]
        assert event.subject == result.order_id
        assert event.id == event_id(result.order_id, 1)

    def test_an_idempotency_key_cannot_be_reused_across_command_types(
        self, service: OrderService
    ) -> None:
        created = service.handle(
            Command(CREATE, "t", "x", json.loads(CREATE_BODY)),
            idempotency_key=http_key("k"),
        )
        with pytest.raises(IdempotencyKeyReused):
            service.handle(
                Command(CONFIRM, "t", "y", {"orderId": created.order_id}),
                idempotency_key=http_key("k"),
            )

    def test_a_key_a_confirm_used_is_refused_to_a_create(self, service: OrderService) -> None:
        """The other way round: a store that keeps the two kinds of record apart must
        still find the confirm's when a create comes under its key."""
        created = service.handle(Command(CREATE, "t", "c", json.loads(CREATE_BODY)))
        key = http_key("k")
        service.handle(
            Command(CONFIRM, "t", "y", {"orderId": created.order_id}), idempotency_key=key
        )
        with pytest.raises(IdempotencyKeyReused):
            service.handle(Command(CREATE, "t", "x", json.loads(CREATE_BODY)), idempotency_key=key)

    @pytest.mark.parametrize("first", ["create", "confirm"])
    def test_a_create_and_a_confirm_racing_under_one_key_cannot_both_commit(
        self, service: OrderService, store: OrderStore, clock: FakeClock, first: str
    ) -> None:
        """One key, two requests at once, each committing after whatever it read: the
        store's write itself must refuse the second, or both take effect under one key."""
        target = service.handle(Command(CREATE, "t", "c", json.loads(CREATE_BODY)))
        key = http_key("shared")
        create = Command(CREATE, "t", "x", json.loads(CREATE_BODY))
        confirm = Command(CONFIRM, "t", "y", {"orderId": target.order_id})
        winner, loser = (create, confirm) if first == "create" else (confirm, create)
        won: list[CommandResult] = []

        def twin() -> None:
            won.append(service.handle(winner, idempotency_key=key))

        racing = OrderService(_twin_commits_before(store, "commit", twin), clock=clock)
        with pytest.raises(IdempotencyKeyReused):
            racing.handle(loser, idempotency_key=key)
        assert len(won) == 1
        order = store.get(target.order_id)
        assert order is not None
        confirmed = first == "confirm"
        assert order.status == (OrderStatus.CONFIRMED if confirmed else OrderStatus.PENDING)
        made = [o for o in store.list_by_customer("cust-1").orders if o.order_id != target.order_id]
        assert len(made) == (0 if confirmed else 1)

    def test_a_create_under_a_key_a_change_reused_after_its_create_makes_a_new_order(
        self, service: OrderService, store: OrderStore, clock: FakeClock
    ) -> None:
        """A key made an order, expired, was reused by a confirm of another order, expired
        again, and is reused by a create: a new order. (A change that committed without
        reading its key wrote its record at generation 0 over the create's, and every later
        create under the key aimed at that first order: 409 for ever; helper-34.)"""
        key = http_key("daily")
        create = Command(CREATE, "t", "x", json.loads(CREATE_BODY))
        first = service.handle(create, idempotency_key=key)
        other = service.handle(Command(CREATE, "t", "c", json.loads(CREATE_BODY)))
        clock.advance(timedelta(hours=25))
        confirm = Command(CONFIRM, "t", "y", {"orderId": other.order_id})
        assert service.handle(confirm, idempotency_key=key).status == 200
        clock.advance(timedelta(hours=25))
        again = service.handle(create, idempotency_key=key)
        assert (again.status, again.replayed) == (201, False)
        assert again.order_id != first.order_id

    def test_a_create_after_a_confirm_of_the_keys_second_order_makes_a_third(
        self, service: OrderService, store: OrderStore, clock: FakeClock
    ) -> None:
        key = http_key("weekly")
        create = Command(CREATE, "t", "x", json.loads(CREATE_BODY))
        made = [service.handle(create, idempotency_key=key)]
        clock.advance(timedelta(hours=25))
        made.append(service.handle(create, idempotency_key=key))
        clock.advance(timedelta(hours=25))
        confirm = Command(CONFIRM, "t", "y", {"orderId": made[1].order_id})
        assert service.handle(confirm, idempotency_key=key).status == 200
        clock.advance(timedelta(hours=25))
        made.append(service.handle(create, idempotency_key=key))
        assert [(m.status, m.replayed) for m in made] == [(201, False)] * 3
        assert len({m.order_id for m in made}) == 3

    @pytest.mark.parametrize("earlier", ["create", "confirm"])
    def test_a_key_reused_after_expiry_by_another_command_replays_its_new_answer(
        self, service: OrderService, store: OrderStore, clock: FakeClock, earlier: str
    ) -> None:
        """A key's record expired; the key then comes with another command, twice (a
        duplicate delivery). The first runs, the second replays it: no 409 and no second
        order, whichever command used the key first."""
        target = service.handle(Command(CREATE, "t", "c", json.loads(CREATE_BODY)))
        key = http_key("reused")
        confirm = Command(CONFIRM, "t", "y", {"orderId": target.order_id})
        create = Command(CREATE, "t", "x", json.loads(CREATE_BODY))
        before, after = (create, confirm) if earlier == "create" else (confirm, create)
        if earlier == "create":  # the confirm's target is then the order the key made
            made = service.handle(create, idempotency_key=key)
            after = Command(CONFIRM, "t", "y", {"orderId": made.order_id})
        else:
            service.handle(before, idempotency_key=key)
        clock.advance(timedelta(hours=25))
        fresh = service.handle(after, idempotency_key=key)
        again = service.handle(after, idempotency_key=key)
        assert (fresh.replayed, again.replayed) == (False, True)
        assert (again.status, again.body) == (fresh.status, fresh.body)
        orders = store.list_by_customer("cust-1").orders
        assert len(orders) == 2

    def test_a_precondition_on_a_missing_order_is_404(self, api: HttpApi) -> None:
        assert self._post(api, "/orders/missing/confirm", if_match='"1"').status == 404

    def test_preconditions_hold_under_the_service_too(self, service: OrderService) -> None:
        created = service.handle(Command(CREATE, "t", "1", json.loads(CREATE_BODY)))
        with pytest.raises(PreconditionFailed):
            service.handle(
                Command(CONFIRM, "t", "2", {"orderId": created.order_id, "expectedVersion": 7})
            )


def _twin_commits_after(store: OrderStore, method: str, twin: Callable[[], None]) -> OrderStore:
    """``store``, except that its first call of ``method`` lets ``twin`` run to its commit
    before it returns what it read: a race between two copies of a command, made
    deterministic."""
    return cast(OrderStore, _Interleaved(store, method, twin, before=False))


def _twin_commits_before(store: OrderStore, method: str, twin: Callable[[], None]) -> OrderStore:
    """``store``, except that ``twin`` runs to its commit just before the first call of
    ``method`` goes through: whatever was read before is then stale."""
    return cast(OrderStore, _Interleaved(store, method, twin, before=True))


class _Interleaved:
    def __init__(
        self, store: OrderStore, method: str, twin: Callable[[], None], *, before: bool
    ) -> None:
        self._store = store
        self._method = method
        self._twin: Callable[[], None] | None = twin
        self._before = before

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if name != self._method:
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._before:
                self._run_twin()
            seen = attribute(*args, **kwargs)
            self._run_twin()
            return seen

        return call

    def _run_twin(self) -> None:
        twin, self._twin = self._twin, None
        if twin is not None:
            twin()
