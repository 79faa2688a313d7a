"""The AWS adapter: DynamoDB store, Lambda entrypoints and the EventBridge relay.

Lambda handlers (one function each; configuration in :mod:`orders_aws.bootstrap`):

=======================================  ===================================================
``orders_aws.http_handler.handler``      API Gateway HTTP API, payload format 2.0
``orders_aws.queue_handler.handler``     SQS batches of command CloudEvents
``orders_aws.eventbridge_handler.handler``  a command CloudEvent from an EventBridge rule
``orders_aws.relay_handler.handler``     DynamoDB Streams -> EventBridge
=======================================  ===================================================

Importing this package imports nothing heavy; boto3 is imported when a client is built.
"""
