"""The local runtime: SQLite store, HTTP server, outbox relay and the ``orders-local`` command."""
