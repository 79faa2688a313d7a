"""Lambda event shapes -> core values, and back. Pure functions, tested with AWS's samples.

API Gateway HTTP API payload format 2.0:
https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from orders_core.application import (
    ANONYMOUS,
    DEFAULT_ADMIN_SCOPE,
    Command,
    Principal,
    scopes_of,
)
from orders_core.edges.http import CE_JSON, HttpRequest, HttpResponse, parse_query
from orders_core.errors import MalformedRequest, Unauthenticated

TEXT_TYPES: Final = ("application/json", "application/problem+json", "text/")


def _object(value: Any, name: str) -> Mapping[str, Any]:
    """``value`` as a JSON object (absent is empty); anything else is a malformed event."""
    if type(value) is dict:  # what json.loads gives: skip the ABC check (~0.3 us a field)
        return value
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MalformedRequest(f"event field {name} must be an object")
    return value


def _text(value: Any, name: str) -> str:
    if type(value) is str:
        return value
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedRequest(f"event field {name} must be a string")
    return value


@dataclass(frozen=True)
class AuthSettings:
    """How API Gateway's authorizer output becomes a principal (docs/decisions/0011)."""

    admin_scope: str = DEFAULT_ADMIN_SCOPE
    """A JWT scope (``scope``/``scp`` claim, or the authorizer's ``scopes``) that grants
    access to every order."""
    admin_arns: frozenset[str] = frozenset()
    """IAM users or roles (``arn:aws:iam::<account>:role/<name>``) that are admins; a role
    counts for every session of it (a path in a role ARN is ignored: session ARNs have none)."""
    shared_roles: frozenset[str] = frozenset()
    """Roles whose sessions are ONE principal (a fleet of machines whose session names
    change with each credential refresh). Every other role's session is its own principal:
    people behind one SSO permission set or one role must not share orders."""
    principal_key: str = "principalId"
    """The Lambda authorizer context key that names the caller."""
    admin_key: str = "admin"
    """The Lambda authorizer context key whose true value grants admin."""


_ASSUMED_ROLE: Final = re.compile(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/.+$")
_ROLE: Final = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):role/(?:.*/)?([^/]+)$")


def role_of(arn: str) -> str | None:
    """The role an ARN is or is a session of, as ``arn:<p>:iam::<account>:role/<name>``."""
    match = _ASSUMED_ROLE.match(arn) or _ROLE.match(arn)
    if match is None:
        return None
    partition, account, name = match.groups()
    return f"arn:{partition}:iam::{account}:role/{name}"


def _iam_principal(iam: Mapping[str, Any], auth: AuthSettings) -> Principal | None:
    arn = iam.get("userArn")
    if not isinstance(arn, str) or not arn.startswith("arn:"):
        return None
    role = role_of(arn)
    # A role's ARN makes each of its sessions admin; a session's ARN only that session
    # (sessions of one role are distinct principals: one person's is not the role's).
    admins = {role_of(a) if _ROLE.match(a) else a for a in auth.admin_arns}
    admin = arn in admins or (role is not None and role in admins)
    cognito = iam.get("cognitoIdentity")
    if isinstance(cognito, Mapping):
        # Every user of a Cognito identity pool arrives as one role session; the identity
        # id tells them apart. Not an ARN, so it cannot equal any ARN principal.
        pool, identity = cognito.get("identityPoolId"), cognito.get("identityId")
        if isinstance(pool, str) and isinstance(identity, str) and pool and identity:
            return Principal.iam(f"cognito:{pool}/{identity}", admin=admin)
    shared = {role_of(r) or r for r in auth.shared_roles}
    return Principal.iam(role if role is not None and role in shared else arn, admin=admin)


def _scopes(claims: Mapping[str, Any], listed: Any) -> set[str]:
    """Granted scopes: the claims' ``scope``/``scp``, and the authorizer's ``scopes`` list.

    API Gateway hands array claims over as one string, ``"[a b]"``: unwrapped here, so an
    ``scp`` list (Okta, Azure AD) grants what it lists.
    """
    unwrapped = dict(claims)
    for name in ("scope", "scp"):
        value = unwrapped.get(name)
        if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
            unwrapped[name] = value[1:-1]
    granted = set(scopes_of(unwrapped))
    if isinstance(listed, list):
        granted.update(s for s in listed if isinstance(s, str))
    return granted


def principal_from(event: Mapping[str, Any], auth: AuthSettings | None = None) -> Principal:
    """The caller, from what API Gateway's authorizer put in ``requestContext.authorizer``.

    No authorizer at all is a route deployed without one (``-c auth=none``): anonymous.
    An authorizer that names nobody is a misconfiguration: 401, never a shared identity.
    """
    auth = auth or AuthSettings()
    context = _object(event.get("requestContext"), "requestContext")
    authorizer = _object(context.get("authorizer"), "authorizer")
    if not authorizer:
        return ANONYMOUS
    if "jwt" in authorizer:
        jwt = _object(authorizer.get("jwt"), "jwt")
        claims = _object(jwt.get("claims"), "claims")
        granted = _scopes(claims, jwt.get("scopes"))
        subject, issuer = claims.get("sub"), claims.get("iss", "")
        if isinstance(subject, str) and subject and isinstance(issuer, str):
            return Principal.jwt(issuer, subject, admin=auth.admin_scope in granted)
    elif "iam" in authorizer:
        found = _iam_principal(_object(authorizer.get("iam"), "iam"), auth)
        if found is not None:
            return found
    elif "lambda" in authorizer:
        values = _object(authorizer.get("lambda"), "lambda")
        name = values.get(auth.principal_key)
        if isinstance(name, str | int) and not isinstance(name, bool) and str(name):
            admin = values.get(auth.admin_key)
            return Principal.authorizer(
                str(name), admin=admin is True or (isinstance(admin, str) and admin == "true")
            )
    raise Unauthenticated("the request's authorizer named no caller")


def http_request_from_apigw(
    event: Mapping[str, Any], auth: AuthSettings | None = None
) -> HttpRequest:
    """Payload format 2.0 -> HttpRequest. A malformed event (API Gateway never sends one, a
    misrouted test might) or an undecodable body raises MalformedRequest: a 400."""
    if type(event) is not dict and not isinstance(event, Mapping):
        raise MalformedRequest("the event must be an object")
    http = _object(_object(event.get("requestContext"), "requestContext").get("http"), "http")
    body_text = _text(event.get("body"), "body")
    if event.get("isBase64Encoded") is True:
        try:
            body = base64.b64decode(body_text, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedRequest("the body is not valid base64") from None
    else:
        body = body_text.encode("utf-8", "surrogatepass")
    raw_query = _text(event.get("rawQueryString"), "rawQueryString")
    headers = _object(event.get("headers"), "headers")
    return HttpRequest(
        method=_text(http.get("method"), "method").upper() or "GET",
        path=_text(event.get("rawPath"), "rawPath") or _text(http.get("path"), "path") or "/",
        # 2.0 delivers lower-case names, repeated headers already comma-joined.
        headers={str(k).lower(): str(v) for k, v in headers.items()},
        query=parse_query(raw_query),
        body=body,
        principal=principal_from(event, auth),
    )


def apigw_response(response: HttpResponse) -> dict[str, Any]:
    """HttpResponse -> payload format 2.0 response (text bodies as text, others base64)."""
    content_type = response.headers.get("content-type", "")
    if content_type.startswith(TEXT_TYPES):
        return {
            "statusCode": response.status,
            "headers": response.headers,
            "body": response.body.decode("utf-8"),
            "isBase64Encoded": False,
        }
    return {
        "statusCode": response.status,
        "headers": response.headers,
        "body": base64.b64encode(response.body).decode(),
        "isBase64Encoded": True,
    }


def command_from_sqs_record(record: Mapping[str, Any]) -> Command:
    """An SQS message whose body is a structured-mode command CloudEvent.

    A ``traceparent`` message attribute fills in trace context the event itself lacks.
    """
    from orders_core.edges.cloudevents_http import command_from_http

    body = _text(record.get("body"), "body").encode("utf-8", "surrogatepass")
    command = command_from_http({"content-type": CE_JSON}, body)
    if command.traceparent is None:
        attributes = _object(record.get("messageAttributes"), "messageAttributes")
        parent = _object(attributes.get("traceparent"), "traceparent").get("stringValue")
        state = _object(attributes.get("tracestate"), "tracestate").get("stringValue")
        parent = parent if isinstance(parent, str) else None
        state = state if isinstance(state, str) else None
        if parent:
            from orders_core.telemetry import valid_traceparent, valid_tracestate

            command = Command(
                command.type,
                command.source,
                command.id,
                command.data,
                command.subject,
                valid_traceparent(parent),
                valid_tracestate(state),
            )
    return command


def command_from_eventbridge(event: Mapping[str, Any]) -> Command:
    """A command delivered by EventBridge.

    Two mappings, chosen by ``detail``: a full structured CloudEvent in ``detail`` (it has
    ``specversion``) is used as is; otherwise the envelope is the CloudEvent: ``id`` <- ``id``,
    ``source`` <- ``source``, ``type`` <- ``detail-type``, ``data`` <- ``detail``.
    """
    from orders_core.edges.cloudevents_http import command_from_http

    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise MalformedRequest("EventBridge detail must be a JSON object")
    if "specversion" in detail:
        return command_from_http({"content-type": CE_JSON}, json.dumps(detail).encode())
    for name in ("id", "source", "detail-type"):
        if not isinstance(event.get(name), str) or not event.get(name):
            raise MalformedRequest(f"EventBridge event has no {name}")
    return Command(type=event["detail-type"], source=event["source"], id=event["id"], data=detail)
