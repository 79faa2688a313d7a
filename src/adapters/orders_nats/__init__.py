"""NATS JetStream for orders-core: a publisher behind the core's port (the ``nats`` extra).

``--sink nats://HOST:PORT[/SUBJECT][?stream=NAME]`` in ``orders-local``; in code::

    from orders_nats import NatsConfig, NatsPublisher
    publisher = NatsPublisher(NatsConfig.from_spec("nats://127.0.0.1:4222?stream=ORDERS"))
"""

from orders_nats.binding import SubjectTemplate
from orders_nats.config import NatsAuth, NatsConfig
from orders_nats.publisher import NatsPublisher, NatsPublishFailed

__all__ = ["NatsAuth", "NatsConfig", "NatsPublishFailed", "NatsPublisher", "SubjectTemplate"]
