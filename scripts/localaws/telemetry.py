"""What an invocation leaves behind in CloudWatch: AWS/Lambda metrics and the function's log stream.

Metrics, per invocation, in namespace AWS/Lambda, as Lambda publishes them:
  Invocations, Errors, Duration (Milliseconds), Throttles (Count) with dimensions
  {FunctionName}; {FunctionName, Resource=<function>:<qualifier>} when a qualifier was used;
  {FunctionName, Resource=<function>:<alias>, ExecutedVersion=<version>} when an alias was invoked, except
  Throttles: a throttled request executes no version, so it has no ExecutedVersion series.
  A datapoint carries the invocation's time but is visible to GetMetricData/GetMetricStatistics only after
  METRIC_LAG_SECONDS (default 60, LOCAL_AWS_METRIC_LAG_SECONDS): CloudWatch ingests metrics with a delay.
Logs: everything the process prints goes to the function's log group (LoggingConfig.LogGroup or
/aws/lambda/<name>), one stream per sandbox, with the START/END/REPORT platform lines (JSON records when
LoggingConfig.LogFormat is JSON).
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from moto.cloudwatch.models import cloudwatch_backends
from moto.logs.models import logs_backends

from . import clock

_lock = threading.Lock()

# How long a datapoint takes to become visible, on local AWS's clock. AWS: Lambda "sends metric data to
# CloudWatch in 1-minute intervals" (Lambda Developer Guide); the exact delay is not documented.
METRIC_LAG_SECONDS = 60.0


class _Ingest:
    """Datapoints in flight: each reaches moto's CloudWatch when its lag has passed, with its own timestamp."""

    def __init__(self):
        self._due: list[tuple[float, int, str, str, list]] = []
        self._seq = 0
        self._ready = threading.Condition()
        threading.Thread(target=self._run, name="metric-ingest", daemon=True).start()

    def put(self, account: str, region: str, data: list) -> None:
        if METRIC_LAG_SECONDS <= 0:
            _store(account, region, data)
            return
        with self._ready:
            self._seq += 1
            due = time.monotonic() + clock.real(METRIC_LAG_SECONDS)
            heapq.heappush(self._due, (due, self._seq, account, region, data))
            self._ready.notify()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._ready.wait(None if not self._due else self._due[0][0] - time.monotonic())
                _, _, account, region, data = heapq.heappop(self._due)
            try:
                _store(account, region, data)
            except Exception:  # a lost datapoint would read as "no traffic": say so loudly
                logging.getLogger("localaws.telemetry").exception("storing a metric datapoint failed")


def _store(account: str, region: str, data: list) -> None:
    with _lock:
        cloudwatch_backends[account][region].put_metric_data("AWS/Lambda", data)


_INGEST: _Ingest | None = None


def _ingest() -> _Ingest:
    global _INGEST
    if _INGEST is None:
        _INGEST = _Ingest()
    return _INGEST


# Where every log line is also written, one file per stream (`<LOG_DIR>/<group>/<stream>.log`), so that what a
# function printed can be read after a failed run even once local AWS has stopped. A start clears it.
LOG_DIR: Path | None = None


def set_log_dir(path: Path) -> None:
    global LOG_DIR
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    LOG_DIR = path


def _log_file(group: str, stream: str) -> Path | None:
    if LOG_DIR is None:
        return None
    safe = lambda s: s.strip("/").replace("/", "_").replace("[", "").replace("]", "_")  # noqa: E731
    return LOG_DIR / safe(group) / (safe(stream) + ".log")


def put_invocation_metrics(
    account: str,
    region: str,
    function: str,
    qualifier: str | None,
    alias: str | None,
    executed_version: str,
    *,
    error: bool,
    duration_ms: float | None,
    throttled: bool,
) -> None:
    dimension_sets = [[{"Name": "FunctionName", "Value": function}]]
    if qualifier and qualifier != "$LATEST":
        resource = [
            {"Name": "FunctionName", "Value": function},
            {"Name": "Resource", "Value": f"{function}:{qualifier}"},
        ]
        dimension_sets.append(resource)
        if alias and not throttled:
            dimension_sets.append(resource + [{"Name": "ExecutedVersion", "Value": executed_version}])
    now = datetime.now(UTC).replace(tzinfo=None)  # moto keeps metric times naive UTC
    data = []
    for dims in dimension_sets:
        if throttled:
            data.append(
                {"MetricName": "Throttles", "Value": 1.0, "Unit": "Count", "Dimensions": dims, "Timestamp": now}
            )
            continue
        data.append({"MetricName": "Invocations", "Value": 1.0, "Unit": "Count", "Dimensions": dims, "Timestamp": now})
        data.append(
            {
                "MetricName": "Errors",
                "Value": 1.0 if error else 0.0,
                "Unit": "Count",
                "Dimensions": dims,
                "Timestamp": now,
            }
        )
        if duration_ms is not None:
            data.append(
                {
                    "MetricName": "Duration",
                    "Value": float(duration_ms),
                    "Unit": "Milliseconds",
                    "Dimensions": dims,
                    "Timestamp": now,
                }
            )
    _ingest().put(account, region, data)


class LogStream:
    """One sandbox's log stream."""

    def __init__(self, account: str, region: str, group: str, version: str, json_format: bool):
        self.backend = logs_backends[account][region]
        self.group = group
        self.json_format = json_format
        day = time.strftime("%Y/%m/%d", time.gmtime())
        import uuid

        self.stream = f"{day}/[{version}]{uuid.uuid4().hex}"
        with _lock:
            self.backend.ensure_log_group(group)
            self.backend.create_log_stream(group, self.stream)
        self._last_ts = 0

    def write(self, message: str) -> None:
        if not message:
            return
        with _lock:
            ts = max(int(time.time() * 1000), self._last_ts)
            self._last_ts = ts
            path = _log_file(self.group, self.stream)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a") as f:
                    f.write(message if message.endswith("\n") else message + "\n")
            try:
                self.backend.put_log_events(self.group, self.stream, [{"timestamp": ts, "message": message}])
            except Exception:
                # The group may have been deleted by a test or an operator; Lambda would recreate it.
                self.backend.ensure_log_group(self.group)
                self.backend.create_log_stream(self.group, self.stream)
                self.backend.put_log_events(self.group, self.stream, [{"timestamp": ts, "message": message}])

    def platform(self, kind: str, request_id: str, version: str, **metrics) -> str:
        """Write a START/END/REPORT record; returns the line written."""
        line = self._platform_line(kind, request_id, version, **metrics)
        self.write(line)
        return line

    def _platform_line(self, kind: str, request_id: str, version: str, **metrics) -> str:
        if self.json_format:
            record = {"requestId": request_id}
            if kind == "start":
                record["version"] = version
            if kind == "report":
                record["metrics"] = metrics
                record["status"] = "success"
            return json.dumps(
                {
                    "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    "type": f"platform.{kind}",
                    "record": record,
                }
            )
        if kind == "start":
            return f"START RequestId: {request_id} Version: {version}"
        if kind == "end":
            return f"END RequestId: {request_id}"
        line = (
            f"REPORT RequestId: {request_id}\tDuration: {metrics['durationMs']:.2f} ms\t"
            f"Billed Duration: {metrics['billedDurationMs']} ms\tMemory Size: {metrics['memorySizeMB']} MB\t"
            f"Max Memory Used: {metrics['maxMemoryUsedMB']} MB"
        )
        if metrics.get("initDurationMs") is not None:
            line += f"\tInit Duration: {metrics['initDurationMs']:.2f} ms"
        return line + "\t"


def install_exact_dimension_match() -> None:
    """GetMetricStatistics matches a metric only when its dimension set equals the query's, as CloudWatch
    does (moto matches any metric that has the queried dimensions among others, so a query by FunctionName
    alone would also count the per-alias and per-version series)."""
    from moto.cloudwatch.models import CloudWatchBackend, MetricDatumBase

    exact = threading.local()
    original_filter = MetricDatumBase.filter
    original_stats = CloudWatchBackend.get_metric_statistics

    def filter(self, namespace, name, dimensions, already_present_metrics=None):
        ok = original_filter(self, namespace, name, dimensions, already_present_metrics)
        if ok and getattr(exact, "on", False):
            return len(self.dimensions) == len(dimensions or [])
        return ok

    def get_metric_statistics(self, *args, **kwargs):
        exact.on = True
        try:
            return original_stats(self, *args, **kwargs)
        finally:
            exact.on = False

    MetricDatumBase.filter = filter
    CloudWatchBackend.get_metric_statistics = get_metric_statistics


def install_percentiles() -> None:
    """GetMetricData answers percentile statistics (`p99`, `p50`, `p99.9`) from the raw values, as
    CloudWatch does for `Duration`; moto answers only Sum, Average, Minimum, Maximum and SampleCount."""
    from moto.cloudwatch.models import Statistics

    original = Statistics.get_statistics_for_type

    def get_statistics_for_type(self, stat):
        if isinstance(stat, str) and stat.startswith("p"):
            try:
                q = float(stat[1:])
            except ValueError:
                return None
            values = sorted(self.metric_single_values_list)
            if not values or not 0 <= q <= 100:
                return None
            # Nearest rank: the smallest value with at least q% of the values at or below it.
            rank = max(1, math.ceil(q / 100 * len(values)))
            return values[rank - 1]
        return original(self, stat)

    Statistics.get_statistics_for_type = get_statistics_for_type
