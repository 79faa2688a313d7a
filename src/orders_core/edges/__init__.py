"""The edges: the ways requests and events reach the application layer, one module each.

``http`` (the provider-neutral HTTP binding every runtime and the Lambda handler share),
``asgi`` and ``lanes`` (the long-running front end), ``cloudevents_http`` (CloudEvents in
HTTP), ``openapi`` (the document from the same routes), ``numbers`` (ASCII-only parsing of
numbers from headers, flags and environment). Unlike the domain and application layers this
package re-exports nothing: each edge has its own import cost (``asgi`` pulls in asyncio,
which a Lambda function must not pay for), so callers import the module they serve.
"""
