"""What was asked of local AWS, for benchmarks and the fault matrix: API calls by caller (the access key id in
the request's SigV4 credential, with the role name when it is a role session), service and operation; and Lambda invocations by function, with their billed duration,
init duration and peak memory. GET /_local/usage reads it; DELETE /_local/usage starts it again."""

from __future__ import annotations

import re
import threading
from collections import Counter

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


class Usage:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter = Counter()
        self.roles: dict[str, str] = {}
        self.invocations: dict[str, dict] = {}

    def call(
        self, authorization: str | None, service: str | None, operation: str | None, role: str | None = None
    ) -> None:
        m = _CREDENTIAL.search(authorization or "")
        key = m.group(1) if m else "-"
        with self._lock:
            self.calls[(key, service or "?", operation or "?")] += 1
            if role:
                self.roles[key] = role

    def _of(self, function: str) -> dict:
        return self.invocations.setdefault(
            function,
            {
                "count": 0,
                "billedMs": 0,
                "durationsMs": [],
                "coldStarts": 0,
                "initMs": [],
                "maxMemoryMb": 0,
                "throttles": 0,
            },
        )

    def throttle(self, function: str) -> None:
        with self._lock:
            self._of(function)["throttles"] += 1

    def invocation(self, function: str, duration_ms: float, init_ms: float | None, max_memory_mb: int) -> None:
        with self._lock:
            s = self._of(function)
            s["count"] += 1
            s["billedMs"] += max(1, int(duration_ms + 0.999))
            s["durationsMs"].append(round(duration_ms, 3))
            if init_ms:
                s["coldStarts"] += 1
                s["initMs"].append(round(init_ms, 2))
            s["maxMemoryMb"] = max(s["maxMemoryMb"], max_memory_mb)

    def to_json(self) -> dict:
        with self._lock:
            calls = [
                {"caller": k, "role": self.roles.get(k), "service": s, "operation": o, "count": n}
                for (k, s, o), n in sorted(self.calls.items())
            ]
            return {"calls": calls, "invocations": {f: dict(v) for f, v in sorted(self.invocations.items())}}

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.roles.clear()
            self.invocations.clear()


USAGE = Usage()
