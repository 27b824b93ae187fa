"""Identify AWS requests and render errors the way each AWS protocol does."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs

import cbor2

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")

# Error code -> HTTP status, as AWS returns them.
STATUS = {
    "TooManyRequestsException": 429,
    "ThrottlingException": 400,
    "Throttling": 400,
    "ServiceException": 500,
    "ServiceUnavailable": 503,
    "ServiceUnavailableException": 503,
    "InternalServerError": 500,
    "InternalFailure": 500,
    "ResourceConflictException": 409,
    "PreconditionFailedException": 412,
    "ResourceNotFoundException": 404,
    "InvalidParameterValueException": 400,
    "InvalidRequestContentException": 400,
    "RequestTooLargeException": 413,
    "ValidationException": 400,
    "UnsupportedMediaTypeException": 415,
    "ResourceInUseException": 400,
    "EC2ThrottledException": 502,
    "GatewayTimeout": 504,
}


@dataclass
class Call:
    """What an incoming request is: the service (SigV4 signing name), the operation, the region."""

    service: str | None
    operation: str | None
    region: str
    protocol: str  # rest-json | json | query | cbor | registry | unknown


def signing_scope(environ) -> tuple[str | None, str | None]:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    m = _SCOPE.search(auth)
    if not m:
        return None, None
    return m.group(1), m.group(2)


def identify(environ, body: bytes) -> Call:
    region, service = signing_scope(environ)
    region = region or "us-east-1"
    path = environ.get("PATH_INFO", "")
    target = environ.get("HTTP_X_AMZ_TARGET")
    if environ.get("HTTP_SMITHY_PROTOCOL") == "rpc-v2-cbor":
        m = re.match(r"^/service/[^/]+/operation/([^/]+)$", path)
        return Call(service, m.group(1) if m else None, region, "cbor")
    if target:
        return Call(service, target.rsplit(".", 1)[-1], region, "json")
    ctype = environ.get("CONTENT_TYPE", "")
    if ctype.startswith("application/x-www-form-urlencoded"):
        params = parse_qs(body.decode("utf-8", "replace"))
        action = params.get("Action", [None])[0]
        return Call(service, action, region, "query")
    qs = parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" in qs:
        return Call(service, qs["Action"][0], region, "query")
    return Call(service, None, region, "rest-json")


def error_response(call: Call, code: str, message: str, status: int | None = None):
    """(status, headers, body) for an error in the call's protocol."""
    status, headers, body = _error_response(call, code, message, status)
    return status, headers + [("x-amzn-RequestId", str(uuid.uuid4()))], body


def _error_response(call: Call, code: str, message: str, status: int | None = None):
    status = status or STATUS.get(code, 400)
    if call.protocol == "cbor":
        body = cbor2.dumps({"__type": code, "message": message})
        return status, [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")], body
    if call.protocol == "query":
        body = (
            "<ErrorResponse><Error><Type>Sender</Type>"
            f"<Code>{code}</Code><Message>{_xml_escape(message)}</Message></Error>"
            "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
        ).encode()
        return status, [("Content-Type", "text/xml")], body
    if call.protocol == "json":
        body = json.dumps({"__type": code, "message": message}).encode()
        return status, [("Content-Type", "application/x-amz-json-1.1")], body
    # restJson1 (Lambda): the type travels in a header, the body carries the message.
    kind = "Service" if status >= 500 else "User"
    body = json.dumps({"Type": kind, "message": message}).encode()
    return status, [("Content-Type", "application/json"), ("x-amzn-ErrorType", code)], body


def _xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
