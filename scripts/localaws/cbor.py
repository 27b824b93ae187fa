"""CloudWatch over Smithy RPC v2 CBOR, the protocol the Rust SDK's CloudWatch client speaks.

moto answers CloudWatch in the query and JSON 1.0 protocols only. A CBOR request
(`POST /service/GraniteServiceVersion20100801/operation/<Op>`, header `smithy-protocol: rpc-v2-cbor`) is
decoded, sent to moto as the same operation in JSON 1.0, and the answer is encoded back in CBOR: timestamps
as CBOR tag 1 (epoch seconds), errors as {"__type", "message"}.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import cbor2

# Response members that are timestamps in CloudWatch's model.
TIMESTAMP_KEYS = {
    "Timestamp",
    "Timestamps",
    "StateUpdatedTimestamp",
    "AlarmConfigurationUpdatedTimestamp",
    "StateTransitionedTimestamp",
    "LastModified",
    "CreationDate",
    "LastUpdateDate",
    "StartTime",
    "EndTime",
    "LastUpdated",
}


def to_json(value):
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode()
    return value


def from_json(value, key: str | None = None):
    if isinstance(value, dict):
        return {k: from_json(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v, key) for v in value]
    if key in TIMESTAMP_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if key in TIMESTAMP_KEYS and isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value


def request_to_json(body: bytes) -> bytes:
    doc = cbor2.loads(body) if body else {}
    return json.dumps(to_json(doc)).encode()


def response_to_cbor(status: int, body: bytes) -> bytes:
    try:
        doc = json.loads(body) if body else {}
    except ValueError:
        doc = {"__type": "InternalFailure", "message": body.decode("utf-8", "replace")}
    if status >= 400 and isinstance(doc, dict):
        code = doc.get("__type") or doc.get("code") or "InternalFailure"
        doc = {"__type": code.split("#")[-1], "message": doc.get("message") or doc.get("Message") or ""}
        return cbor2.dumps(doc)
    return cbor2.dumps(from_json(doc), datetime_as_timestamp=True, timezone=UTC)
