"""Local AWS's front door: one endpoint for every service, moto behind it, our extensions in front.

Each request is, in this order: a control call (/_local/...), a registry call (/v2/... without SigV4), a call
signed by a role session that the role may not make (iam: refused), sts:AssumeRole (iam), a faulted call (an
armed fault for its service and operation answers instead), a Lambda call (lambda_api), a CloudWatch CBOR call
(cbor), or anything else, which moto answers.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs

from . import cbor, clock, cloudformation, codebuild, events, iam, protocol, redrive, stepfunctions, telemetry
from .code import CodeStore
from .faults import FaultError, FaultRegistry
from .lambda_api import ApiError, LambdaService
from .registry import Registry, install_ecr_hooks
from .usage import USAGE

log = logging.getLogger("localaws")

STATUS_TEXT = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    412: "Precondition Failed",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def camel_to_snake(name: str) -> str:
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _read_body(environ) -> bytes:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        return stream.read(int(length))
    if environ.get("wsgi.input_terminated") or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return stream.read()
    return b""


def _name_the_execution(body: bytes) -> bytes:
    """StartExecution without a name: Step Functions names the execution itself (a UUID), where moto would
    name it "None" and refuse every later unnamed start as ExecutionAlreadyExists."""
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return body  # moto answers the malformed request
    if isinstance(doc, dict) and doc.get("name") is None:
        doc["name"] = str(uuid.uuid4())
        return json.dumps(doc).encode()
    return body


class LocalAws:
    def __init__(self, moto_app, lambda_service: LambdaService, registry: Registry, faults: FaultRegistry):
        self.moto_app = moto_app
        self.lambda_service = lambda_service
        self.registry = registry
        self.faults = faults
        self.started = time.time()

    def __call__(self, environ, start_response):
        try:
            status, headers, body = self.handle(environ)
        except Exception as e:  # a bug of ours: answer as AWS's 500, keep serving
            log.exception("local AWS failed on %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            call = environ.get("localaws.call") or protocol.Call(None, None, "us-east-1", "json")
            status, headers, body = protocol.error_response(call, "ServiceException", f"local AWS error: {e}", 500)
        if status is None:  # passed through to moto
            return headers
        start_response(f"{status} {STATUS_TEXT.get(status, 'Status')}", list(headers))
        return [body]

    def handle(self, environ):
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_local/"):
            return self.control(method, path, _read_body(environ))
        if path.startswith("/v2") and "HTTP_AUTHORIZATION" not in environ:
            query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
            headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
            if environ.get("CONTENT_TYPE"):
                headers["content-type"] = environ["CONTENT_TYPE"]
            return self.registry.handle(method, path, query, headers, _read_body(environ))

        body = _read_body(environ)
        call = protocol.identify(environ, body)
        environ["localaws.call"] = call
        route = None
        if LambdaService.is_lambda_path(path) and call.service in (None, "lambda"):
            call.service, call.protocol = "lambda", "rest-json"
            route = self.lambda_service.route(method, path)
            if route is not None:
                call.operation = route[0]
        caller = iam.SESSIONS.role_of(environ.get("HTTP_AUTHORIZATION"))
        USAGE.call(environ.get("HTTP_AUTHORIZATION"), call.service, call.operation, caller)
        refused = self.authorize(call, route, environ, path, body)
        if refused is not None:
            return refused
        fault = self.faults.take(call.service, call.operation, path + "\n" + body.decode("utf-8", "replace"), caller)
        if fault is not None:
            log.info("fault #%d: %s.%s answers %s", fault.id, call.service, call.operation, fault.error)
            if fault.error == "timeout":
                time.sleep(fault.delay_seconds)
                return protocol.error_response(
                    call, "GatewayTimeout", fault.message or "injected timeout: the call was not carried out", 504
                )
            return protocol.error_response(
                call,
                fault.error,
                fault.message or f"{fault.error}: injected by local AWS (fault #{fault.id})",
                fault.status,
            )
        if route is not None:
            return self.lambda_call(call, route, environ, body)
        if call.protocol == "cbor" and call.service == "monitoring":
            return self.cloudwatch_cbor(call, environ, body)
        if call.service == "states" and call.operation == "StartExecution":
            body = _name_the_execution(body)
        return self.pass_through(environ, body)

    # -- IAM --------------------------------------------------------------------------------------
    def authorize(self, call, route, environ, path, body):
        """The answer for a call the caller may not make (or for sts:AssumeRole), else None."""
        from moto.core import DEFAULT_ACCOUNT_ID

        try:
            session = iam.SESSIONS.of(environ.get("HTTP_AUTHORIZATION"))
        except iam.InvalidToken as e:
            code = "InvalidClientTokenId" if call.protocol == "query" else "UnrecognizedClientException"
            return protocol.error_response(
                call, code, f"The security token included in the request is invalid (access key {e}).", 403
            )
        if call.service == "sts" and call.operation == "AssumeRole":
            params = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
            status, xml = iam.assume_role(session, DEFAULT_ACCOUNT_ID, params)
            return status, [("Content-Type", "text/xml")], xml.encode()
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        try:
            if session is not None:
                request = iam.Request(
                    call.service or "?",
                    call.operation,
                    call.region,
                    session.account,
                    path,
                    query,
                    body,
                    call.protocol,
                    route,
                )
                iam.authorize(session, request, self.lambda_service._split)
            if route is not None:
                self._lambda_side_checks(session, route, call.region, body)
        except iam.AccessDenied as e:
            log.info("IAM refused %s.%s: %s", call.service, call.operation, e.message)
            return protocol.error_response(call, e.code, e.message, e.status)
        return None

    def _lambda_side_checks(self, session, route, region, body):
        """What Lambda checks beyond the action itself: iam:PassRole for the role it is handed, and that it
        may pull the image it is pointed at."""
        from moto.core import DEFAULT_ACCOUNT_ID

        operation, _, params = route
        if operation not in ("CreateFunction", "UpdateFunctionConfiguration", "UpdateFunctionCode"):
            return
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            return  # the operation's own validation answers
        if not isinstance(doc, dict):
            return
        if session is not None and operation != "UpdateFunctionCode" and isinstance(doc.get("Role"), str):
            iam.pass_role(session, doc["Role"], "lambda.amazonaws.com")
        image = doc.get("ImageUri") if operation == "UpdateFunctionCode" else (doc.get("Code") or {}).get("ImageUri")
        if isinstance(image, str) and not doc.get("DryRun"):
            raw = doc.get("FunctionName") if operation == "CreateFunction" else params.get("fn")
            try:
                name, _ = self.lambda_service._split(str(raw or ""), region)
            except ApiError:
                return  # the operation's own validation answers
            account = session.account if session is not None else DEFAULT_ACCOUNT_ID
            iam.ensure_lambda_can_pull(session, image, f"arn:aws:lambda:{region}:{account}:function:{name}")

    # -- moto -------------------------------------------------------------------------------------
    def _call_moto(self, environ, body):
        environ = dict(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        captured = {}

        def start_response(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers

        chunks = self.moto_app(environ, start_response)
        data = b"".join(chunks)
        if hasattr(chunks, "close"):
            chunks.close()
        return int(captured["status"].split()[0]), captured["headers"], data

    def pass_through(self, environ, body):
        return self._call_moto(environ, body)

    def cloudwatch_cbor(self, call, environ, body):
        try:
            json_body = cbor.request_to_json(body)
        except Exception as e:
            return protocol.error_response(call, "SerializationException", f"request is not valid CBOR: {e}", 400)
        env = dict(environ)
        env["PATH_INFO"] = "/"
        env["CONTENT_TYPE"] = "application/x-amz-json-1.0"
        env["HTTP_X_AMZ_TARGET"] = f"GraniteServiceVersion20100801.{call.operation}"
        env.pop("HTTP_SMITHY_PROTOCOL", None)
        from moto.cloudwatch.responses import CloudWatchResponse

        if not hasattr(CloudWatchResponse, camel_to_snake(call.operation or "")):
            return protocol.error_response(
                call, "UnknownOperationException", f"local AWS's CloudWatch has no operation {call.operation}", 400
            )
        status, _, data = self._call_moto(env, json_body)
        out = cbor.response_to_cbor(status, data)
        return status, [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")], out

    # -- Lambda -----------------------------------------------------------------------------------
    def lambda_call(self, call, route, environ, body):
        op, handler, params = route
        raw_query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        query = {k: v[0] for k, v in raw_query.items()}
        query["tagKeys__all"] = raw_query.get("tagKeys", [])
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        from moto.core import DEFAULT_ACCOUNT_ID

        try:
            result = handler(DEFAULT_ACCOUNT_ID, call.region, params, query, headers, body)
        except ApiError as e:
            status, hdrs, payload = protocol.error_response(call, e.code, e.message, e.status)
            if e.extra:
                doc = json.loads(payload)
                doc.update(e.extra)
                payload = json.dumps(doc).encode()
            return status, hdrs, payload
        request_id = [("x-amzn-RequestId", os.urandom(16).hex())]
        if len(result) == 3:
            status, payload, extra = result
            hdrs = [("Content-Type", "application/json")] + list(extra.items()) + request_id
            return status, hdrs, payload or b""
        status, doc = result
        if doc is None:
            return status, request_id, b""
        return status, [("Content-Type", "application/json")] + request_id, json.dumps(doc).encode()

    # -- control ----------------------------------------------------------------------------------
    def control(self, method, path, body):
        def reply(status, doc):
            return status, [("Content-Type", "application/json")], json.dumps(doc).encode()

        if path == "/_local/health":
            return reply(
                200,
                {
                    "status": "running",
                    "pid": os.getpid(),
                    "uptimeSeconds": round(time.time() - self.started, 1),
                    "lambdaUpdateDelaySeconds": self.lambda_service.update_delay,
                    "metricLagSeconds": telemetry.METRIC_LAG_SECONDS,
                    "clockScale": clock.SCALE,
                    # Local AWS's clock (compressed when clockScale > 1), to compare its timestamps with.
                    "nowMs": int(time.time() * 1000),
                },
            )
        if path.startswith("/_local/faults/") and method == "DELETE":
            try:
                removed = self.faults.remove(int(path.rsplit("/", 1)[1]))
            except ValueError:
                return reply(400, {"error": "DELETE /_local/faults/<id> takes a fault id (a number)"})
            return reply(200 if removed else 404, {"removed": removed})
        if path == "/_local/faults":
            if method == "GET":
                return reply(200, {"faults": self.faults.list()})
            if method == "DELETE":
                return reply(200, {"cleared": self.faults.clear()})
            if method == "POST":
                try:
                    spec = json.loads(body or b"null")
                    specs = spec if isinstance(spec, list) else [spec]
                    added = [self.faults.add(s).to_json() for s in specs]
                except (ValueError, FaultError) as e:
                    return reply(400, {"error": str(e)})
                return reply(201, {"faults": added})
        if path == "/_local/usage":
            if method == "GET":
                return reply(200, USAGE.to_json())
            if method == "DELETE":
                USAGE.reset()
                return reply(200, {"reset": True})
        if path.startswith("/_local/lambda-code/") and method == "GET":
            from moto.core import DEFAULT_ACCOUNT_ID

            parts = path.split("/")
            if len(parts) == 5:
                data = self.lambda_service.code_of(DEFAULT_ACCOUNT_ID, "us-east-1", parts[3], parts[4])
                if data is not None:
                    return 200, [("Content-Type", "application/zip")], data
            return reply(404, {"error": f"no zip package at {path}"})
        if path == "/_local/config" and method == "POST":
            try:
                spec = json.loads(body or b"{}")
                if not isinstance(spec, dict):
                    raise ValueError("the body must be a JSON object")
                delay = spec.get("lambdaUpdateDelaySeconds")
                if delay is not None:
                    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= 60:
                        raise ValueError("lambdaUpdateDelaySeconds must be a number from 0 to 60")
                    self.lambda_service.update_delay = float(delay)
            except (ValueError, AttributeError) as e:
                return reply(400, {"error": str(e)})
            return reply(200, {"lambdaUpdateDelaySeconds": self.lambda_service.update_delay})
        return reply(404, {"error": f"unknown control endpoint {method} {path}; see scripts/localaws/README.md"})


def serve(port: int, state_dir: Path, region: str, update_delay: float, metric_lag: float) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    clock.configure()
    telemetry.METRIC_LAG_SECONDS = metric_lag
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    os.environ["MOTO_PORT"] = str(port)  # moto's Step Functions interpreter calls services at this port
    from moto.core.config import default_user_config
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    default_user_config["stepfunctions"]["execute_state_machine"] = True
    default_user_config["lambda"]["use_docker"] = False

    endpoint = f"http://127.0.0.1:{port}"
    registry = Registry(state_dir / "registry", region)
    code = CodeStore(state_dir / "cache", registry)
    lambda_service = LambdaService(code, endpoint, update_delay)
    install_ecr_hooks()
    telemetry.install_exact_dimension_match()
    telemetry.install_percentiles()
    events.install(lambda_service, endpoint)
    events.install_execution_status_events()
    iam.install_state_machine_credentials()
    iam.install_policy_version_default()
    stepfunctions.install()
    redrive.install()
    clock.install_step_functions()
    codebuild.install(endpoint)
    cloudformation.install(lambda_service)
    app = LocalAws(DomainDispatcherApplication(create_backend_app), lambda_service, registry, FaultRegistry())
    server = make_server("127.0.0.1", port, app, threaded=True)
    # Bound, so this is the only server of this state dir. Nothing survives a restart (moto keeps its state in
    # memory): the registry blobs and unpacked code a previous run left are orphans. Clear them, or the state
    # dir grows with every run (by gigabytes over a few test runs).
    registry.clear()
    code.clear()
    telemetry.set_log_dir(state_dir / "logs")  # the last run's function logs are kept until this start

    import signal

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("local AWS listening on %s (state in %s)", endpoint, state_dir)
    try:
        server.serve_forever()
    finally:
        lambda_service.shutdown()
        log.info("local AWS stopped")
