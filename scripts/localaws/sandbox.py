"""The Lambda execution environment: a Runtime API emulator and the function's own process.

Each sandbox is one process of the function's code and one Runtime API endpoint on 127.0.0.1 (its own port,
given to the process as AWS_LAMBDA_RUNTIME_API). The process long-polls
`GET /2018-06-01/runtime/invocation/next`, answers with `.../invocation/{id}/response` or `.../error`, and
reports a failed start with `/runtime/init/error`. A sandbox serves one invocation at a time and stays warm
for the next; a timeout, a crash or an init error discards it, as Lambda does.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import clock
from .code import Artifact

INIT_TIMEOUT_SECONDS = 10.0  # Lambda's init phase limit for on-demand functions
PREFIX = "/2018-06-01/runtime"


@dataclass
class Outcome:
    payload: bytes
    function_error: str | None  # "Unhandled" when the code failed, None on success
    duration_ms: float
    init_duration_ms: float | None  # set on the invocation that paid the cold start
    max_memory_mb: int


class InitFailed(Exception):
    def __init__(self, error_type: str, message: str, payload: bytes | None = None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.payload = payload or json.dumps({"errorType": error_type, "errorMessage": message}).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A process killed mid-request (timeout, stop) leaves a broken socket behind: nothing to report.
        pass


class Sandbox:
    def __init__(
        self, artifact: Artifact, env: dict[str, str], function_arn: str, timeout_s: float, log_line, label: str
    ):
        self.artifact = artifact
        self.function_arn = function_arn
        self.timeout_s = timeout_s
        self.log_line = log_line  # callable(str): one line of the process's output
        self.label = label
        self.env = env
        self.busy = False
        self.dead = False
        self.cold = True
        self.init_duration_ms: float | None = None
        self._events: queue.Queue = queue.Queue()
        self._ready = threading.Event()
        self._done = threading.Event()
        self._current: str | None = None
        self._picked_up: float | None = None  # when the runtime took the current invocation's event
        self._responded: float | None = None  # when it answered
        self._result: tuple[bytes, str | None] | None = None
        self._init_error: tuple[str, bytes] | None = None
        self.proc: subprocess.Popen | None = None
        self.server = _Server(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, name=f"runtime-api-{label}", daemon=True).start()

    @property
    def runtime_api(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the process and wait until it asks for its first event. Raises InitFailed."""
        env = dict(self.env)
        env["AWS_LAMBDA_RUNTIME_API"] = self.runtime_api
        if not self.artifact.chroot:  # an image's root has no preload; its clock stays real
            env.update(clock.child_env())
        art = self.artifact
        preexec = None
        if art.chroot:
            root, workdir = str(art.root), art.workdir

            def preexec():  # runs in the child before exec
                os.chroot(root)
                os.chdir(workdir)

        started = time.monotonic()
        # ETXTBSY: a sandbox forked by another thread while this code was being unpacked holds the file's write
        # descriptor until its own exec closes it; the exec succeeds a moment later. Any other error is final.
        for attempt in range(40):
            try:
                self.proc = subprocess.Popen(
                    art.argv,
                    env=env,
                    cwd=None if art.chroot else art.workdir,
                    preexec_fn=preexec,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    close_fds=True,
                )
                break
            except OSError as e:
                if e.errno == errno.ETXTBSY and attempt < 39:
                    time.sleep(0.05)
                    continue
                self.stop()
                raise InitFailed("Runtime.InvalidEntrypoint", f"Error: fork/exec {art.argv[0]}: {e.strerror or e}")
        threading.Thread(target=self._pump_output, daemon=True).start()
        deadline = started + INIT_TIMEOUT_SECONDS
        while not self._ready.is_set():
            if self._init_error is not None:
                err_type, payload = self._init_error
                self.stop()
                raise InitFailed(err_type, _message_of(payload), payload)
            code = self.proc.poll()
            if code is not None:
                self._ready.wait(0.05)
                if self._ready.is_set():
                    break
                self.stop()
                raise InitFailed("Runtime.ExitError", f"Error: Runtime exited with error: {_exit_text(code)}")
            if time.monotonic() > deadline:
                self.stop()
                raise InitFailed(
                    "Sandbox.Timedout", f"Error: Task timed out after {INIT_TIMEOUT_SECONDS:.2f} seconds during init"
                )
            self._ready.wait(0.01)
        self.init_duration_ms = (time.monotonic() - started) * 1000.0

    def invoke(self, payload: bytes, request_id: str, client_context: str | None = None) -> Outcome:
        assert self.proc is not None and not self.dead  # callers only invoke started, live sandboxes
        self._done.clear()
        self._result = None
        self._picked_up = None
        self._responded = None
        self._current = request_id
        deadline_ms = int((time.time() + self.timeout_s * clock.SCALE) * 1000)  # on the function's clock
        started = time.monotonic()
        self._events.put((request_id, payload, deadline_ms, client_context))
        finished = False
        limit = started + self.timeout_s
        while not finished:
            finished = self._done.wait(0.02)
            if finished:
                break
            if self.proc.poll() is not None:
                self._done.wait(0.05)  # a response may have raced with the exit
                if self._done.is_set():
                    break
                code = self.proc.returncode
                self.stop()
                err = {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: {_exit_text(code)}",
                }
                return self._outcome(json.dumps(err).encode(), "Unhandled", started)
            if time.monotonic() > limit:
                mem = self._max_memory_mb()
                self.stop()
                err = {
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"RequestId: {request_id} Error: Task timed out after {self.timeout_s:.2f} seconds",
                }
                out = self._outcome(json.dumps(err).encode(), "Unhandled", started)
                out.max_memory_mb = mem
                return out
        body, error = self._result  # type: ignore[misc]  # set before _done
        return self._outcome(body, error, started)

    def _outcome(self, body: bytes, error: str | None, started: float) -> Outcome:
        """Duration is the handler's time, as Lambda reports it: from the runtime receiving the event to its
        answer (init is reported apart, as Init Duration). An invocation that never answered (timeout, exit)
        lasted until it ended."""
        init = self.init_duration_ms if self.cold else None
        self.cold = False
        begun = self._picked_up if self._picked_up is not None else started
        ended = self._responded if self._responded is not None else time.monotonic()
        return Outcome(body, error, max(0.0, ended - begun) * 1000.0, init, self._max_memory_mb())

    def _max_memory_mb(self) -> int:
        if self.proc is None:
            return 0
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return max(1, round(int(line.split()[1]) / 1024))
        except OSError:
            pass
        return 0

    def stop(self) -> None:
        self.dead = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self._events.put(None)
        try:
            self.server.shutdown()
            self.server.server_close()
        except Exception:
            pass

    def _pump_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            self.log_line(raw.decode("utf-8", "replace").rstrip("\n"))

    # -- the Runtime API -------------------------------------------------------------------------
    def _handler(self):
        sandbox = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _reply(self, status: int, body: bytes = b"", headers: dict | None = None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def do_GET(self):
                if self.path != f"{PREFIX}/invocation/next":
                    return self._reply(404, b'{"errorType":"NotFound","errorMessage":"unknown runtime API path"}')
                sandbox._ready.set()
                item = sandbox._events.get()
                if item is None:
                    return self._reply(410, b'{"errorType":"SandboxStopped"}')
                request_id, payload, deadline_ms, client_context = item
                headers = {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": request_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": sandbox.function_arn,
                    "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
                }
                if client_context:
                    headers["Lambda-Runtime-Client-Context"] = client_context
                sandbox._picked_up = time.monotonic()  # the handler's time starts when the runtime has the event
                self._reply(200, payload, headers)

            def do_POST(self):
                body = self._body()
                path = self.path
                if path == f"{PREFIX}/init/error":
                    err_type = self.headers.get("Lambda-Runtime-Function-Error-Type") or "Runtime.Unknown"
                    sandbox._init_error = (err_type, body)
                    return self._reply(202, b'{"status":"OK"}')
                prefix = f"{PREFIX}/invocation/"
                if path.startswith(prefix):
                    rest = path[len(prefix) :]
                    request_id, _, kind = rest.partition("/")
                    if request_id != sandbox._current or sandbox._done.is_set():
                        return self._reply(
                            400,
                            json.dumps(
                                {"errorType": "InvalidRequestID", "errorMessage": f"Invalid request ID: {request_id}"}
                            ).encode(),
                        )
                    if kind == "response":
                        sandbox._result = (body, None)
                    elif kind == "error":
                        if not body:
                            err_type = self.headers.get("Lambda-Runtime-Function-Error-Type") or "Unhandled"
                            body = json.dumps({"errorType": err_type, "errorMessage": ""}).encode()
                        sandbox._result = (body, "Unhandled")
                    else:
                        return self._reply(404, b'{"errorType":"NotFound"}')
                    sandbox._responded = time.monotonic()
                    sandbox._done.set()
                    return self._reply(202, b'{"status":"OK"}')
                return self._reply(404, b'{"errorType":"NotFound","errorMessage":"unknown runtime API path"}')

        return Handler


def _exit_text(code: int | None) -> str:
    if code is None:
        return "unknown"
    if code < 0:
        import signal

        try:
            return f"signal: {signal.Signals(-code).name.lower().removeprefix('sig')}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


def _message_of(payload: bytes) -> str:
    try:
        doc = json.loads(payload)
        return f"{doc.get('errorType', '')}: {doc.get('errorMessage', '')}".strip(": ")
    except ValueError:
        return payload.decode("utf-8", "replace")[:500]
