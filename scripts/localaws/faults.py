"""Fault injection: make named API calls fail N times.

POST /_local/faults   {"service": "lambda", "operation": "UpdateAlias", "error": "TooManyRequestsException",
                       "count": 2, "match": "my-function", "status": 429, "message": "...", "delaySeconds": 5}
GET /_local/faults    the faults still armed, and what each has done so far
DELETE /_local/faults clear them all; DELETE /_local/faults/<id> just one

"service" is the SigV4 signing name (lambda, states, ecr, events, logs, monitoring, iam, ...; "sfn" is
accepted for states and "cloudwatch" for monitoring). "operation" is the API operation name. "match",
optional, is a string that must appear in the request path or body (a function name, say), so a fault can
aim at one resource. "caller", optional, is the name of the IAM role whose session must have signed the
call (a step's execution role, say), so a fault can aim at one caller. "error" is the error code to answer with, or "timeout": the call hangs for
delaySeconds (default 30) and then answers 504 with nothing done, as a call whose client gave up.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

_ALIASES = {
    "sfn": "states",
    "stepfunctions": "states",
    "cloudwatch": "monitoring",
    "eventbridge": "events",
    "cloudwatchlogs": "logs",
}


def canonical_service(name: str | None) -> str | None:
    if name is None:
        return None
    name = name.lower()
    return _ALIASES.get(name, name)


@dataclass
class Fault:
    id: int
    service: str
    operation: str
    error: str
    count: int
    match: list[str] | None = None
    caller: str | None = None
    status: int | None = None
    message: str | None = None
    delay_seconds: float = 30.0
    fired: int = 0

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "service": self.service,
            "operation": self.operation,
            "error": self.error,
            "remaining": self.count,
            "fired": self.fired,
            "match": self.match,
            "caller": self.caller,
            "status": self.status,
            "message": self.message,
            "delaySeconds": self.delay_seconds,
        }


class FaultError(ValueError):
    pass


def _match_list(value) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise FaultError(f"match must be a string or a list of strings, got {value!r}")


@dataclass
class FaultRegistry:
    _faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def add(self, spec: dict) -> Fault:
        if not isinstance(spec, dict):
            raise FaultError('a fault is a JSON object: {"service", "operation", "error", "count"}')
        missing = [k for k in ("service", "operation", "error") if not spec.get(k)]
        if missing:
            raise FaultError(
                f"fault is missing {', '.join(missing)}; e.g. "
                '{"service":"lambda","operation":"UpdateAlias","error":"TooManyRequestsException","count":2}'
            )
        count = spec.get("count", 1)
        if not isinstance(count, int) or count < 1:
            raise FaultError(f"count must be a whole number >= 1, got {count!r}")
        status = spec.get("status")
        if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
            raise FaultError(f"status must be an HTTP error status (400-599), got {status!r}")
        caller = spec.get("caller")
        if caller is not None and (not isinstance(caller, str) or not caller):
            raise FaultError(f"caller must be an IAM role name (a non-empty string), got {caller!r}")
        unknown = set(spec) - {"service", "operation", "error", "count", "match", "caller", "status", "message",
                               "delaySeconds"}  # fmt: skip
        if unknown:
            raise FaultError(f"unknown fault field(s) {', '.join(sorted(unknown))}: see the header of faults.py")
        delay = spec.get("delaySeconds", 30.0)
        if not isinstance(delay, (int, float)) or delay < 0 or delay > 900:
            raise FaultError(f"delaySeconds must be a number from 0 to 900, got {delay!r}")
        with self._lock:
            fault = Fault(
                id=next(self._ids),
                service=canonical_service(spec["service"]),
                operation=spec["operation"],
                error=spec["error"],
                count=count,
                match=_match_list(spec.get("match")),
                caller=caller,
                status=status,
                message=spec.get("message"),
                delay_seconds=float(delay),
            )
            self._faults.append(fault)
            return fault

    def remove(self, fault_id: int) -> bool:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if f.id != fault_id]
            return len(self._faults) < before

    def clear(self) -> int:
        with self._lock:
            n = len(self._faults)
            self._faults.clear()
            return n

    def list(self) -> list[dict]:
        with self._lock:
            return [f.to_json() for f in self._faults]

    def take(
        self, service: str | None, operation: str | None, haystack: str, caller: str | None = None
    ) -> Fault | None:
        """The first armed fault for this call (signed by the role `caller`, None for the administrator), with
        one of its shots used; None if none applies."""
        if not operation:
            return None
        service = canonical_service(service)
        with self._lock:
            for fault in self._faults:
                if fault.count <= 0 or fault.operation != operation:
                    continue
                if service is not None and fault.service != service:
                    continue
                if fault.match and not all(m in haystack for m in fault.match):
                    continue
                if fault.caller is not None and fault.caller != caller:
                    continue
                fault.count -= 1
                fault.fired += 1
                return fault
        return None
