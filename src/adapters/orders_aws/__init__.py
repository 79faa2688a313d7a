"""The AWS adapter: DynamoDB store, Lambda entrypoints and the EventBridge relay.

Not built yet; see the project's issue on the AWS adapter.
"""
