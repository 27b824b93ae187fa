"""Step Functions' RedriveExecution, which moto does not have.

What AWS documents (Step Functions Developer Guide, "Restarting state machine executions with redrive",
https://docs.aws.amazon.com/step-functions/latest/dg/redrive-executions.html; API Reference,
RedriveExecution and DescribeExecution), and what is done here:

- **Who may be redriven.** Only executions of STANDARD state machines ("This API action is not supported by
  EXPRESS state machines"), whose status is FAILED, ABORTED or TIMED_OUT, that stopped at most 14 days ago
  ("This period starts from the day a state machine completes its execution"), were started at most a year
  ago ("the maximum open time of one year") and on or after November 15, 2023, and whose history holds fewer
  than 24,999 events. Otherwise the call gets `ExecutionNotRedrivable` (400) whose message is the
  `redriveStatusReason` DescribeExecution documents for that case. The dates are on local AWS's clock.
- **Where it continues.** From the unsuccessful step, with the input that step entered with: the last
  top-level state with a `*StateEntered` event and no `*StateExited` after it ("there's no
  <stateType>Exited event corresponding to the <stateType>Entered event", redrive-map-run.html). States that
  exited are not rerun. A Fail state is reentered and fails again. The rerun state starts afresh: its retry
  counts and TimeoutSeconds start from 0, and so does the state machine's TimeoutSeconds ("reset to 0").
- **The same execution.** Same ARN, same history (an `ExecutionRedriven` event with `redriveCount`, then the
  rerun's events, numbered on), the context object's `$$.Execution` keeps its `Id`, `Input`, `Name`,
  `RoleArn` and `StartTime`, with `RedriveCount` (0 before any redrive) and `RedriveTime` (only after one).
  DescribeExecution answers `redriveCount`, `redriveDate`, `redriveStatus` and `redriveStatusReason`, and
  ListExecutions `redriveCount` and `redriveDate`.
- **Idempotency.** A `clientToken` used by one of the execution's last 10 successful redrives in the last 15
  minutes gets that redrive's answer again, and nothing is redriven.
- **Status-change events.** The redriven run goes RUNNING, then to its new end; EventBridge gets an event for
  each (`events._emit_status`), with `redriveCount` and `redriveDate` in the detail.

What is not done (see README, gaps): a Parallel or Inline Map state is rerun whole (AWS reruns only the
branches or iterations that failed); Distributed Map runs are not redriven on their own.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import threading
import time

from moto.core.exceptions import AWSError

log = logging.getLogger("localaws.redrive")

UTC = datetime.UTC
LAUNCH = datetime.datetime(2023, 11, 15, tzinfo=UTC)  # "You started the execution on or after November 15, 2023"
REDRIVABLE_PERIOD = datetime.timedelta(days=14)
MAX_OPEN_TIME = datetime.timedelta(days=365)
HISTORY_ROOM = 24_999  # "The execution event history count is less than 24,999"
TOKENS_KEPT = 10  # "idempotent responses for the last 10 client tokens used to successfully redrive"
TOKEN_LIFETIME = datetime.timedelta(minutes=15)  # "valid for up to 15 minutes after they are first used"
CLIENT_TOKEN = re.compile(r"[!-~]{1,64}")  # the API's ClientToken constraints

# DescribeExecution's redriveStatusReason strings (API Reference, DescribeExecution).
RUNNING = "Execution is RUNNING and cannot be redriven"
SUCCEEDED = "Execution is SUCCEEDED and cannot be redriven"
BEFORE_LAUNCH = "Execution was started before the launch of RedriveExecution"
HISTORY_FULL = "Execution history event limit exceeded"
TOO_OLD = "Execution has exceeded the max execution time"
PERIOD_OVER = "Execution redrivable period exceeded"
EXPRESS = "This API action is not supported by EXPRESS state machines."

_LOCK = threading.Lock()


class ExecutionNotRedrivable(AWSError):
    TYPE = "ExecutionNotRedrivable"
    STATUS = 400


class RedriveValidation(AWSError):
    TYPE = "ValidationException"
    STATUS = 400


def _now() -> datetime.datetime:
    return datetime.datetime.now(tz=UTC)  # local AWS's clock (compressed when LOCAL_AWS_CLOCK_SCALE > 1)


def _aware(value) -> datetime.datetime | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.datetime.fromtimestamp(value, UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _history(execution) -> list:
    worker = execution.exec_worker
    env = worker.env if worker is not None else None
    return env.event_manager.get_event_history() if env is not None else []


def _history_len(execution) -> int:
    worker = execution.exec_worker
    env = worker.env if worker is not None else None
    return len(env.event_manager._history_event_list) if env is not None else 0


def redrive_count(execution) -> int:
    return getattr(execution, "_localaws_redrive_count", 0)


def redrive_date(execution) -> datetime.datetime | None:
    return getattr(execution, "_localaws_redrive_date", None)


def not_redrivable_reason(execution, now: datetime.datetime | None = None) -> str | None:
    """Why RedriveExecution would refuse this execution now (DescribeExecution's redriveStatusReason), or None."""
    from moto.stepfunctions.parser.api import ExecutionStatus

    now = now or _now()
    # moto keeps the type a state machine was created with in `type` (its `sm_type` is always STANDARD).
    sm_type = getattr(execution.state_machine, "type", None) or execution.sm_type
    if str(getattr(sm_type, "value", sm_type)) == "EXPRESS":
        return EXPRESS
    status = execution.exec_status
    if status == ExecutionStatus.RUNNING or status is None:
        return RUNNING
    if status == ExecutionStatus.SUCCEEDED:
        return SUCCEEDED
    start = _aware(execution.start_date)
    if start is not None and start < LAUNCH:
        return BEFORE_LAUNCH
    if _history_len(execution) >= HISTORY_ROOM:
        return HISTORY_FULL
    if start is not None and now - start > MAX_OPEN_TIME:
        return TOO_OLD
    stop = _aware(execution.stop_date)
    if stop is not None and now - stop > REDRIVABLE_PERIOD:
        return PERIOD_OVER
    return None


def redrive(backend, execution_arn: str, client_token: str | None) -> datetime.datetime:
    """RedriveExecution: continue `execution_arn` from its unsuccessful state; the redrive's date."""
    if client_token is not None and not CLIENT_TOKEN.fullmatch(client_token):
        raise RedriveValidation(
            "1 validation error detected: Value at 'clientToken' failed to satisfy constraint: "
            "Member must have length between 1 and 64 and match pattern [!-~]+"
        )
    execution = backend.describe_execution(execution_arn)  # InvalidArn, ExecutionDoesNotExist
    with _LOCK:
        now = _now()
        tokens = getattr(execution, "_localaws_redrive_tokens", [])
        for token, first_used, date in tokens:
            if client_token is not None and token == client_token and now - first_used <= TOKEN_LIFETIME:
                return date  # an idempotent answer: the redrive this token made
        reason = not_redrivable_reason(execution, now)
        if reason is not None:
            raise ExecutionNotRedrivable(f"Execution {execution_arn} cannot be redriven: {reason}")
        _settle(execution)
        now = _now()
        state, state_input = unsuccessful_state(execution)
        count = redrive_count(execution) + 1
        execution._localaws_redrive_count = count
        execution._localaws_redrive_date = now
        if client_token is not None:
            execution._localaws_redrive_tokens = (tokens + [(client_token, now, now)])[-TOKENS_KEPT:]
        _run(execution, state, state_input, count, now)
        log.info("execution %s redriven (%d) from state %s", execution.name, count, state)
        return now


def _settle(execution, limit: float = 5.0) -> None:
    """The old run may still be writing its last event (ExecutionAborted comes after StopExecution answers,
    ExecutionTimedOut after the state in flight returns): wait a little for it, so the redriven history
    follows it."""
    deadline = time.monotonic() + limit
    ends = {"ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut", "ExecutionSucceeded"}
    while time.monotonic() < deadline:
        history = _history(execution)
        if history and _kind(history[-1]) in ends:
            return
        time.sleep(0.02)


def _kind(event) -> str:
    kind = event.get("type", "")
    return str(getattr(kind, "value", kind))


def _program(execution):
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    return AmazonStateLanguageParser.parse(execution.state_machine.definition)[0]


def unsuccessful_state(execution) -> tuple[str, object]:
    """The top-level state the redrive starts at and the input it gets: the last state entered and not
    exited, with the input it entered with."""
    program = _program(execution)
    top = program.states.states
    pending: tuple[str, object] | None = None
    last_exited: tuple[str, object] | None = None
    for event in _history(execution):
        kind = _kind(event)
        if kind.endswith("StateEntered"):
            details = event.get("stateEnteredEventDetails") or {}
            if details.get("name") in top:
                pending = (details["name"], json.loads(details.get("input") or "null"))
        elif kind.endswith("StateExited"):
            details = event.get("stateExitedEventDetails") or {}
            if pending is not None and details.get("name") == pending[0]:
                pending = None
                last_exited = (details["name"], json.loads(details.get("output") or "null"))
    if pending is not None:
        return pending
    if last_exited is not None:
        # The execution ended between two states (timed out or stopped just then): the next one.
        from moto.stepfunctions.parser.asl.component.state.state_continue_with import ContinueWithNext

        continue_with = getattr(top[last_exited[0]], "continue_with", None)
        if isinstance(continue_with, ContinueWithNext):
            return continue_with.next_state.name, last_exited[1]
    return program.start_at.start_at_name, execution.input_data


def _run(execution, state: str, state_input, count: int, date: datetime.datetime) -> None:
    from moto.stepfunctions.parser.api import ExecutionStatus

    from . import events

    old_env = execution.exec_worker.env
    worker = _worker_class()(
        evaluation_details=execution._get_start_execution_worker()._evaluation_details,
        exec_comm=execution._get_start_execution_worker_comm(),
        cloud_watch_logging_session=execution._cloud_watch_logging_session,
        activity_store=execution._activity_store,
    )
    worker.redrive = (state, state_input, count, date, old_env)
    execution.exec_worker = worker
    execution.exec_status = ExecutionStatus.RUNNING
    execution.stop_date = None
    execution.output = None
    execution.error = None
    execution.cause = None
    worker.prepare()
    events._emit_status(execution)  # RUNNING, before the run can end
    worker.start()


_WORKER = None


def _worker_class():
    global _WORKER
    if _WORKER is not None:
        return _WORKER
    from moto.stepfunctions.parser.api import ExecutionRedrivenEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.component.common.flow.start_at import StartAt
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventHistoryContext, EventManager
    from moto.stepfunctions.parser.asl.eval.states import ContextObjectData, ExecutionData, StateMachineData
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    class RedriveWorker(ExecutionWorker):
        """A run of the same definition over the same Execution, from the unsuccessful state, appending to its
        history; the context object's Execution fields are the original run's."""

        redrive: tuple

        def prepare(self) -> None:
            state, state_input, count, date, old_env = self.redrive
            details = self._evaluation_details
            history = old_env.event_manager.get_event_history() if old_env is not None else []
            last_id = history[-1]["id"] if history else 0
            execution = ExecutionData(
                Id=details.execution_details.arn,
                Input=details.execution_details.inpt,
                Name=details.execution_details.name,
                RoleArn=details.execution_details.role_arn,
                StartTime=_iso(details.execution_details.start_time),
            )
            execution["RedriveCount"] = count
            execution["RedriveTime"] = _iso(date)
            env = Environment(
                aws_execution_details=details.aws_execution_details,
                execution_type=details.state_machine_details.typ,
                context=ContextObjectData(
                    Execution=execution,
                    StateMachine=StateMachineData(
                        Id=details.state_machine_details.arn, Name=details.state_machine_details.name
                    ),
                ),
                event_history_context=EventHistoryContext(previous_event_id=last_id),
                cloud_watch_logging_session=self._cloud_watch_logging_session,
                activity_store=self._activity_store,
                variable_store=old_env.variable_store if old_env is not None else None,
                mock_test_case=self._mock_test_case,
            )
            # The same history, numbered on (a copy: a state of the old run that is still returning writes to
            # the old one, not into this run's).
            manager = EventManager(cloud_watch_logging_session=self._cloud_watch_logging_session)
            manager._history_event_list.extend(history)
            manager._event_id_gen._next_id = last_id + 1
            manager._localaws_env = env  # stepfunctions.py's history cap fails this run
            env.event_manager = manager
            env.states.reset(state_input)
            self.env = env
            self._start_at = state
            self._count = count

        def _execution_logic(self):
            program = self._get_evaluation_entrypoint()
            program.start_at = StartAt(self._start_at)
            self.env.event_manager.add_event(
                context=self.env.event_history_context,
                event_type=HistoryEventType.ExecutionRedriven,
                event_details=EventDetails(
                    executionRedrivenEventDetails=ExecutionRedrivenEventDetails(redriveCount=self._count)
                ),
            )
            program.eval(self.env)
            self._execution_communication.terminated()

    _WORKER = RedriveWorker
    return _WORKER


def install() -> None:
    """Answer RedriveExecution in moto's Step Functions front, report the redrive fields in DescribeExecution,
    ListExecutions and the context object."""
    from moto.core.responses import ActionResult
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
    from moto.stepfunctions.responses import StepFunctionResponse

    def redrive_execution(self):
        date = redrive(self.stepfunction_backend, self._get_param("executionArn"), self._get_param("clientToken"))
        return ActionResult({"redriveDate": date})

    original_describe = StepFunctionResponse.describe_execution
    original_list = StepFunctionResponse.list_executions

    def describe_execution(self):
        result = original_describe(self)
        execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        doc = _result_dict(result)
        if doc is not None and hasattr(execution, "exec_worker"):
            doc.update(redrive_fields(execution))
        return result

    def list_executions(self):
        result = original_list(self)
        doc = _result_dict(result)
        if doc is not None:
            by_arn = {}
            for sm in self.stepfunction_backend.state_machines:
                for e in sm.executions:
                    by_arn[e.execution_arn] = e
            for item in doc.get("executions") or []:
                e = by_arn.get(item.get("executionArn"))
                if e is not None and hasattr(e, "exec_worker"):
                    item["redriveCount"] = redrive_count(e)
                    if redrive_date(e) is not None:
                        item["redriveDate"] = redrive_date(e)
        return result

    original_env = ExecutionWorker._get_evaluation_environment

    def evaluation_environment(self):
        env = original_env(self)
        execution = env.states.context_object.context_object_data["Execution"]
        # "StartTime": "Format: ISO 8601" (moto puts a datetime there, which no output can carry).
        execution["StartTime"] = _iso(execution.get("StartTime"))
        # "RedriveCount": 0 before any redrive; RedriveTime "is only available if you've redriven an execution".
        execution.setdefault("RedriveCount", 0)
        return env

    StepFunctionResponse.redrive_execution = redrive_execution
    StepFunctionResponse.describe_execution = describe_execution
    StepFunctionResponse.list_executions = list_executions
    ExecutionWorker._get_evaluation_environment = evaluation_environment


def _iso(value):
    """A context object's time: ISO 8601 in UTC with milliseconds, as Step Functions writes them."""
    from moto.core.utils import iso_8601_datetime_with_milliseconds

    if isinstance(value, datetime.datetime):
        return iso_8601_datetime_with_milliseconds(_aware(value).astimezone(UTC))
    return value


def redrive_fields(execution) -> dict:
    """DescribeExecution's redrive members for `execution`."""
    out: dict = {"redriveCount": redrive_count(execution)}
    if redrive_date(execution) is not None:
        out["redriveDate"] = redrive_date(execution)
    reason = not_redrivable_reason(execution)
    out["redriveStatus"] = "REDRIVABLE" if reason is None else "NOT_REDRIVABLE"
    if reason is not None:
        out["redriveStatusReason"] = reason
    return out


def _result_dict(result) -> dict | None:
    value = getattr(result, "result", None)  # moto's ActionResult
    return value if isinstance(value, dict) else None
