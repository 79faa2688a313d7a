"""Order ids: random version-4 UUIDs as 32 hex digits, as ``uuid.uuid4().hex`` gives."""

import uuid

from orders_core.ports import new_order_id


def test_order_ids_are_version_4_uuids_in_hex() -> None:
    ids = [new_order_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for value in ids:
        parsed = uuid.UUID(hex=value)
        assert (len(value), parsed.hex, parsed.version) == (32, value, 4)
        assert parsed.variant == uuid.RFC_4122


def test_every_random_bit_varies() -> None:
    ids = [int(new_order_id(), 16) for _ in range(400)]
    varying = 0
    for bit in range(128):
        if len({(value >> bit) & 1 for value in ids}) == 2:
            varying += 1
    assert varying == 122  # 128 less the 4 version bits and 2 variant bits
