"""Step Functions' limits that moto's interpreter does not keep.

moto already fails a state whose input or output is over 256 KiB with `States.DataLimitExceeded` and ends an
execution past its `TimeoutSeconds` as TIMED_OUT. What is added here:

- **History.** A standard workflow's execution history holds at most 25,000 events; "if the execution history
  reaches this quota, the execution will fail" (Step Functions Developer Guide, service quotas, "Quotas
  related to state machine executions"). AWS does not document the error's name: local AWS fails the
  execution with `States.Runtime` and a cause that names the quota.
- **Terminal errors.** `States.ALL` "doesn't catch the States.DataLimitExceeded and States.Runtime error types"
  (Step Functions Developer Guide, "Handling errors in Step Functions workflows", error names); moto's matches
  every error. Here a Retrier or Catcher with `States.ALL` lets those two through (one that names them still
  matches them).
"""

from __future__ import annotations

import logging

log = logging.getLogger("localaws.stepfunctions")

HISTORY_LIMIT = 25_000


def install() -> None:
    from moto.stepfunctions.parser.api import ExecutionFailedEventDetails
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager

    original_init = Environment.__init__
    original_add = EventManager.add_event

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        # The root environment creates the execution's one EventManager; frames share it afterwards.
        if getattr(self.event_manager, "_localaws_env", None) is None:
            self.event_manager._localaws_env = self

    def add_event(self, context, event_type, event_details=None, timestamp=None, update_source_event_id=True):
        event_id = original_add(self, context, event_type, event_details, timestamp, update_source_event_id)
        env = getattr(self, "_localaws_env", None)
        if event_id >= HISTORY_LIMIT - 1 and env is not None and not getattr(self, "_localaws_capped", False):
            self._localaws_capped = True
            log.info("an execution reached %d history events: failed", HISTORY_LIMIT)
            env.set_error(
                ExecutionFailedEventDetails(
                    error="States.Runtime",
                    cause=f"The execution reached the maximum execution history size of {HISTORY_LIMIT} events "
                    "(a Step Functions quota): it fails at this point.",
                )
            )
        return event_id

    Environment.__init__ = init
    EventManager.add_event = add_event
    _install_terminal_errors()


TERMINAL = ("States.DataLimitExceeded", "States.Runtime")


def _install_terminal_errors() -> None:
    from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl

    original = ErrorEqualsDecl._eval_body

    def eval_body(self, env):
        error = env.stack[-1] if env.stack else None
        name = getattr(error, "error_name", None)
        named = {getattr(n, "error_name", None) for n in self.error_names}
        if name in TERMINAL and name not in named:
            env.stack.pop()
            env.stack.append(False)  # States.ALL (or any other name) does not match a terminal error
            return
        original(self, env)

    ErrorEqualsDecl._eval_body = eval_body
