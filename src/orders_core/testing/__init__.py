"""Test support shipped with the library: an in-memory adapter, a fake clock and the
contract suite every store must pass (``orders_core.testing.contract``, needs pytest).

Third-party stores reuse the suite the same way ours do::

    from orders_core.testing.contract import StoreContract

    class TestMyStore(StoreContract):
        def make_store(self, tmp_path):
            return MyStore(...)
"""

from orders_core.testing.clock import FakeClock
from orders_core.testing.memory import InMemoryPublisher, InMemoryStore

__all__ = ["FakeClock", "InMemoryPublisher", "InMemoryStore"]
