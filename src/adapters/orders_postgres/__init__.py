"""orders-core on PostgreSQL: the store with its transactional outbox, and its relay.

``orders_postgres.backend:backend`` is the factory ``orders-local --store postgres`` opens
(needs the ``postgres`` extra: psycopg 3 and psycopg_pool).
"""
