"""The browser console at ``/console``: orders, their timelines, the outbox, redelivery.

Plain HTML, CSS and a little JavaScript shipped in this package (``static/``): no build
step, no CDN, nothing fetched from elsewhere, so it works offline. The page polls a
versioned JSON read API (``/console/api/v1``, in the OpenAPI document) that scripts may use
too. The runtime mounts it with ``HttpApi(extra_routes=Console(...).routes())``; the
Lambda handler never imports this package.

Who may use it, and how its one POST is protected: :mod:`orders_local.console._access`.
"""

from orders_local.console._access import CSRF_COOKIE, CSRF_HEADER
from orders_local.console._routes import API, CSP, Console, check_trace_template

__all__ = ["API", "CSP", "CSRF_COOKIE", "CSRF_HEADER", "Console", "check_trace_template"]
