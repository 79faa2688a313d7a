"""The AWS adapter: DynamoDB store, Lambda triggers and the EventBridge publisher.

Lambda handlers (one module each: its logic, ``handle(event, context, rt)``, and ``handler``;
configuration in :mod:`orders_aws.bootstrap`):

=================================  ========================================================
``orders_aws.apigw.handler``       API Gateway HTTP API, payload format 2.0
``orders_aws.sqs.handler``         SQS batches of command CloudEvents
``orders_aws.eventbridge.handler`` a command CloudEvent from an EventBridge rule
``orders_aws.stream.handler``      DynamoDB Streams -> EventBridge (the stream relay)
=================================  ========================================================

The rest: :mod:`~orders_aws.dynamodb` (the store and its ``backend`` factory),
:mod:`~orders_aws.table` (the table's design), :mod:`~orders_aws.items` and
:mod:`~orders_aws.item_events` (what items hold), :mod:`~orders_aws.capacity`,
:mod:`~orders_aws.clients` (botocore clients), :mod:`~orders_aws.publisher` (EventBridge),
:mod:`~orders_aws.shapes` (Lambda event shapes <-> core values).

Importing this package imports nothing heavy; botocore is imported when a client is built.
"""
