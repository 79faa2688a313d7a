"""An order record without its NewImage (the stream switched to KEYS_ONLY or OLD_IMAGE)
is reported, never dropped with a success answer (helper-43's review)."""

from __future__ import annotations

from orders_aws import stream
from orders_aws.bootstrap import Runtime
from tests.aws.conftest import LambdaContext, stream_event
from tests.aws.test_relay import FlakyEvents, make_orders


def test_an_order_record_without_its_new_image_is_not_silently_dropped(
    rt: Runtime, context: LambdaContext
) -> None:
    """An INSERT of an order item arriving without NewImage (the stream switched to
    KEYS_ONLY or OLD_IMAGE; the mapping's filter keys on Keys, so such records do reach the
    relay) carries events the relay cannot see. It is skipped as "not an order": the
    events are lost with a success answer, no DLQ letter, no failure reported."""
    (order_id,) = make_orders(rt, context, 1)
    bus = FlakyEvents({})
    rt._clients["events"] = bus
    event = stream_event(rt)
    for record in event["Records"]:
        image = record["dynamodb"].pop("NewImage")
        record["dynamodb"]["Keys"] = {"pk": image["pk"], "sk": image["sk"]}
        record["dynamodb"]["StreamViewType"] = "KEYS_ONLY"
    result = stream.handle(event, context, rt)
    assert bus.published == []
    # Never dropped here: reported (or dead-lettered, with a DLQ configured).
    assert result["batchItemFailures"] != [], f"events of {order_id} dropped silently"
