"""Local AWS's clock: real time, or time compressed (LOCAL_AWS_CLOCK_SCALE > 1) so that a deployment whose
stages last hours runs in minutes.

Compressed, the wall clock of local AWS and of every process it starts (functions, CodeBuild commands) runs
SCALE times faster, from one origin: `scripts/local-aws start` preloads `clock/scaled_clock.c` with
LOCAL_AWS_CLOCK="<origin ns>:<scale>". What waits by design waits SCALE times less real time: Wait states,
Retry intervals, the execution's TimeoutSeconds, Lambda's update and provisioning delays, its asynchronous
retries, EventBridge's delivery retries, CloudWatch's ingest lag, a CodeBuild build's timeout. Work is not
faster, so the timeouts that bound work stay on real time: a function's Timeout and a Task's TimeoutSeconds
(both measured on the monotonic clock the preload leaves alone).
"""

from __future__ import annotations

import os
import threading
import time

SCALE = 1.0


def configure() -> None:
    """Read LOCAL_AWS_CLOCK (set by scripts/local-aws) and check that the preloaded clock really runs at
    that speed; refuse to start otherwise, since a half-compressed clock would mislead every test."""
    global SCALE
    spec = os.environ.get("LOCAL_AWS_CLOCK")
    if not spec:
        SCALE = 1.0
        return
    try:
        _, scale = spec.split(":")
        SCALE = float(scale)
    except ValueError:
        raise SystemExit(f"LOCAL_AWS_CLOCK={spec!r} is not <origin ns>:<scale>") from None
    if SCALE < 1:
        raise SystemExit(f"LOCAL_AWS_CLOCK_SCALE must be at least 1, not {SCALE}")
    wall, mono = time.time(), time.monotonic()
    time.sleep(0.2)
    measured = (time.time() - wall) / (time.monotonic() - mono)
    if abs(measured - SCALE) > 0.2 * SCALE:
        raise SystemExit(
            f"the clock runs {measured:.1f} times real time, not {SCALE}: the preload "
            f"(LD_PRELOAD={os.environ.get('LD_PRELOAD', '')!r}) is not in effect"
        )


def real(seconds: float) -> float:
    """How much real time a designed wait of `seconds` (on local AWS's clock) takes."""
    return seconds / SCALE


def child_env() -> dict[str, str]:
    """What a process local AWS starts needs to share its clock (nothing when the clock is real)."""
    if SCALE == 1.0:
        return {}
    return {k: os.environ[k] for k in ("LD_PRELOAD", "LOCAL_AWS_CLOCK") if k in os.environ}


def sleep(seconds: float) -> None:
    """Sleep `seconds` of local AWS's clock."""
    time.sleep(real(seconds))


def install_step_functions() -> None:
    """moto's interpreter waits on real time; make its Wait states, Retry intervals and execution timeout
    wait on local AWS's clock. A Task's TimeoutSeconds stays real: it bounds work."""
    if SCALE == 1.0:
        return
    import types

    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.program import program
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function

    def wait_interval(self, env, wait_seconds):
        deadline = time.time() + wait_seconds
        while env.is_running():
            left = deadline - time.time()
            if left <= 0:
                return
            env.program_state_event.wait(real(left))

    wait_function.WaitFunction._wait_interval = wait_interval
    retrier_decl.time = types.SimpleNamespace(sleep=sleep, time=time.time, monotonic=time.monotonic)

    def eval_program(self, env):
        # Program.eval as moto has it, with the execution's TimeoutSeconds on local AWS's clock.
        timeout = self.timeout_seconds.timeout_seconds if self.timeout_seconds else None
        env.next_state_name = self.start_at.start_at_name
        worker = threading.Thread(target=super(program.Program, self).eval, args=(env,), daemon=True)
        program.TMP_THREADS.append(worker)
        worker.start()
        worker.join(timeout=None if timeout is None else real(timeout))
        if worker.is_alive():
            env.set_timed_out()

    program.Program.eval = eval_program
