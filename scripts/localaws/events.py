"""EventBridge delivery to Lambda and Step Functions targets (moto delivers only to logs, SQS and buses).

A matching event reaches each target asynchronously, as EventBridge delivers: Input (constant JSON),
InputPath, or InputTransformer, else the event itself in EventBridge's shape (ISO `time`, `account`). A
Step Functions target starts an execution (StartExecution through local AWS's own endpoint, so injected
faults apply); a Lambda target is an asynchronous invoke, allowed only if the function's resource policy lets
events.amazonaws.com invoke it for this rule, as in AWS. Failed deliveries are retried with backoff
(3 attempts here; EventBridge keeps trying for 24 hours) and logged.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime

from moto.events.models import Rule
from moto.events.utils import EventTemplateParser

from . import clock, iam, redrive

log = logging.getLogger("localaws.events")

DELIVERY_ATTEMPTS = 3


def install(lambda_service, endpoint_url: str) -> None:
    original = Rule.send_to_targets

    def send_to_targets(self, original_event, transform_input=True):
        if getattr(self, "state", "ENABLED") != "ENABLED":
            return
        if not getattr(self, "event_pattern", None) or not getattr(self.event_pattern, "_pattern", True):
            # A schedule-only rule (ScheduleExpression, no EventPattern) matches no event.
            return
        if not self.event_pattern.matches_event(original_event):
            return
        ours = [t for t in self.targets if _service(t["Arn"]) in ("lambda", "states", "sns")]
        others = [t for t in self.targets if t not in ours]
        if others:
            saved = self.targets
            self.targets = others
            try:
                original(self, original_event, transform_input)
            finally:
                self.targets = saved
        event = _eventbridge_shape(original_event)
        for target in ours:
            try:
                payload = _target_input(target, event)
            except Exception as e:  # a broken InputTransformer fails this target, not the event's source
                log.warning("rule %s: input for target %s could not be built: %s", self.name, target["Arn"], e)
                continue
            threading.Thread(
                target=_deliver, args=(self, target, payload, lambda_service, endpoint_url), daemon=True
            ).start()

    Rule.send_to_targets = send_to_targets


def _service(arn: str) -> str:
    parts = arn.split(":")
    return parts[2] if len(parts) > 2 else ""


def _eventbridge_shape(event: dict) -> dict:
    out = {
        k: event[k]
        for k in ("version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail")
        if k in event
    }
    t = out.get("time")
    if isinstance(t, (int, float)):
        out["time"] = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    out["ingestion-time"] = event.get("ingestion-time")
    return out


def _target_input(target: dict, event: dict) -> str:
    public = {k: v for k, v in event.items() if k != "ingestion-time"}
    if target.get("Input"):
        return target["Input"]
    if target.get("InputPath"):
        from jsonpath_ng.ext import parse

        matches = parse(target["InputPath"]).find(public)
        return json.dumps(matches[0].value if matches else None)
    transformer = target.get("InputTransformer")
    if transformer:
        return json.dumps(
            EventTemplateParser.parse(
                input_template=transformer.get("InputTemplate"),
                input_paths_map=transformer.get("InputPathsMap", {}),
                event=event,
            )
        )
    return json.dumps(public)


def _deliver(rule, target, payload: str, lambda_service, endpoint_url: str) -> None:
    arn = target["Arn"]
    attempts = DELIVERY_ATTEMPTS
    policy = target.get("RetryPolicy") or {}
    if isinstance(policy.get("MaximumRetryAttempts"), int):
        attempts = min(DELIVERY_ATTEMPTS, policy["MaximumRetryAttempts"] + 1)
    for attempt in range(1, attempts + 1):
        try:
            if _service(arn) == "states":
                _start_execution(target, arn, payload, endpoint_url)
            elif _service(arn) == "sns":
                _publish(arn, payload, endpoint_url)
            else:
                _invoke_lambda(rule, arn, payload, lambda_service)
            log.info("delivered event from rule %s to %s", rule.name, arn)
            return
        except PermissionError as e:
            log.warning("rule %s cannot deliver to %s: %s", rule.name, arn, e)
            return
        except Exception as e:  # retried: throttling, an execution that failed to start, ...
            log.warning(
                "rule %s delivery to %s failed (attempt %d/%d): %s", rule.name, arn, attempt, DELIVERY_ATTEMPTS, e
            )
            clock.sleep(0.5 * 2 ** (attempt - 1))


def _start_execution(target: dict, arn: str, payload: str, endpoint_url: str) -> None:
    """EventBridge starts the execution as the target's role (a Step Functions target must name one), so that
    role's policy must allow states:StartExecution on the state machine."""
    import boto3
    import botocore.exceptions

    role = target.get("RoleArn")
    if not role:
        raise PermissionError(f"the Step Functions target {arn} has no RoleArn: EventBridge needs a role to start it")
    session = iam.SESSIONS.issue(role, "events-target")
    region = arn.split(":")[3]
    client = boto3.client(
        "stepfunctions",
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=session.access_key_id,
        aws_secret_access_key=session.secret_access_key,
        aws_session_token=session.session_token,
    )
    try:
        client.start_execution(stateMachineArn=arn, input=payload)
    except botocore.exceptions.ClientError as e:
        if e.response.get("Error", {}).get("Code") == "AccessDeniedException":
            raise PermissionError(e.response["Error"].get("Message")) from None
        raise


def _publish(arn: str, payload: str, endpoint_url: str) -> None:
    """An SNS target gets the event (or the transformed input) as the message; a template that is a quoted
    string arrives as that string."""
    import boto3

    try:
        decoded = json.loads(payload)
    except ValueError:
        decoded = None
    message = decoded if isinstance(decoded, str) else payload
    client = boto3.client(
        "sns",
        region_name=arn.split(":")[3],
        endpoint_url=endpoint_url,
        aws_access_key_id="events",
        aws_secret_access_key="events",
    )
    client.publish(TopicArn=arn, Message=message)


def _invoke_lambda(rule, arn: str, payload: str, lambda_service) -> None:
    parts = arn.split(":")
    region, account = parts[3], parts[4]
    with lambda_service.lock:
        fn, _ = lambda_service._function(account, region, arn)
        if not lambda_service.allows(fn, "events.amazonaws.com", rule.arn):
            raise PermissionError(
                f"the resource policy of {fn.arn} does not allow events.amazonaws.com "
                f"to invoke it for {rule.arn} (add a lambda:InvokeFunction permission)"
            )
    lambda_service.invoke_event(account, region, arn, payload.encode())


def install_execution_status_events() -> None:
    """Make Step Functions emit "Step Functions Execution Status Change" events when an execution starts
    (RUNNING) and when it ends, as AWS does for standard workflows (moto emits none)."""
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication, Execution

    original = BaseExecutionWorkerCommunication._reflect_execution_status
    original_start = Execution.start

    def reflect(self):
        original(self)
        _emit_status(self.execution)

    def start(self):
        original_start(self)
        _emit_status(self)

    BaseExecutionWorkerCommunication._reflect_execution_status = reflect
    Execution.start = start


def _emit_status(execution) -> None:
    from moto.events.models import events_backends

    try:
        status = execution.exec_status.value
        detail = {
            "executionArn": execution.exec_arn,
            "stateMachineArn": execution.state_machine.arn,
            "name": execution.name,
            "status": status,
            "startDate": _epoch_ms(execution.start_date),
            "stopDate": _epoch_ms(execution.stop_date),
            "input": json.dumps(execution.input_data),
            "output": json.dumps(execution.output) if execution.output is not None else None,
            "error": execution.error,
            "cause": execution.cause,
        }
        # "the detail section in the event data provides the same information as the DescribeExecution API"
        # (Step Functions Developer Guide, cw-events): its redrive members too (redrive.py).
        redriven = redrive.redrive_fields(execution)
        redriven["redriveDate"] = _epoch_ms(redriven.get("redriveDate"))
        detail.update(redriven)
        events_backends[execution.account_id][execution.region_name].put_events(
            [
                {
                    "Source": "aws.states",
                    "DetailType": "Step Functions Execution Status Change",
                    "Detail": json.dumps(detail),
                    "Resources": [execution.exec_arn],
                }
            ]
        )
        log.info("execution %s: %s", execution.name, status)
    except Exception:  # an event that cannot be built must not break the execution's own record
        log.exception("status-change event for %s not emitted", getattr(execution, "name", "?"))


def _epoch_ms(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(float(value) * 1000)
