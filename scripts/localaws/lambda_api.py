"""The Lambda control plane and invoke path of local AWS.

moto's Lambda model lacks what a deployer depends on (see the README's list): the function lifecycle
(State Pending -> Active, LastUpdateStatus InProgress -> Successful | Failed), RevisionId preconditions,
PublishVersion's CodeSha256 guard and no-op when nothing changed, immutable per-version code and
configuration, alias RoutingConfig validation and weighted routing, reserved concurrency, and an Invoke that
runs the function's real code. This module owns the Lambda REST API (2015-03-31 and friends) and keeps its
own model; everything else stays with moto (IAM roles are checked in moto's IAM).
"""

from __future__ import annotations

import base64
import copy
import json
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote

from . import clock, iam, telemetry
from .code import CodeError, CodeStore
from .sandbox import InitFailed, Outcome, Sandbox
from .usage import USAGE

NAME = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")
ALIAS_NAME = re.compile(r"^(?!^[0-9]+$)[a-zA-Z0-9-_]{1,128}$")
ENV_KEY = re.compile(r"^[a-zA-Z]([a-zA-Z0-9_])+$")
RESERVED_ENV = {
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
}
SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024
ASYNC_PAYLOAD_LIMIT = 256 * 1024
# Config fields that make a version differ from the previous one (Description and state do not).
FINGERPRINT_FIELDS = (
    "CodeSha256",
    "Role",
    "Handler",
    "Runtime",
    "MemorySize",
    "Timeout",
    "Environment",
    "EphemeralStorage",
    "Architectures",
    "LoggingConfig",
    "ImageConfigResponse",
    "TracingConfig",
    "Layers",
    "PackageType",
)


class ApiError(Exception):
    def __init__(self, code: str, message: str, status: int | None = None, extra: dict | None = None):
        super().__init__(message)
        self.code, self.message, self.status, self.extra = code, message, status, extra or {}


def not_found(arn: str) -> ApiError:
    return ApiError("ResourceNotFoundException", f"Function not found: {arn}", 404)


def validation(value, field_name: str, constraint: str) -> ApiError:
    return ApiError(
        "ValidationException",
        f"1 validation error detected: Value '{value}' at '{field_name}' failed to satisfy constraint: {constraint}",
        400,
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


@dataclass
class Snapshot:
    """One configuration of a function: $LATEST or an immutable published version."""

    config: dict  # the FunctionConfiguration fields that are stored
    code: dict  # {"PackageType": "Image", "ImageUri", "resolved"} or {"PackageType": "Zip", "zip": bytes}

    def fingerprint(self) -> str:
        return json.dumps({k: self.config.get(k) for k in FINGERPRINT_FIELDS}, sort_keys=True, default=str)

    def copy(self) -> Snapshot:
        return Snapshot(copy.deepcopy(self.config), dict(self.code))


@dataclass
class Alias:
    name: str
    function_version: str
    description: str
    routing: dict  # {"AdditionalVersionWeights": {...}} or {}
    revision_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Function:
    account: str
    region: str
    name: str
    latest: Snapshot
    active: Snapshot | None = None  # the $LATEST configuration invocations run (last successful update)
    versions: dict[str, Snapshot] = field(default_factory=dict)
    next_version: int = 1
    aliases: dict[str, Alias] = field(default_factory=dict)
    reserved: int | None = None
    provisioned: dict = field(default_factory=dict)  # qualifier -> config (ProvisionedConcurrencyConfig)
    policy: list[dict] = field(default_factory=list)
    policy_revision: str = field(default_factory=lambda: str(uuid.uuid4()))
    tags: dict = field(default_factory=dict)
    update_token: int = 0
    pending_versions: set = field(default_factory=set)  # RevisionIds of versions published mid-update
    pool: dict = field(default_factory=dict)  # (version label, revision) -> [Sandbox]
    inflight: int = 0

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.name}"


class LambdaService:
    def __init__(self, code: CodeStore, endpoint_url: str, update_delay: float, max_concurrency: int = 64):
        self.code = code
        self.endpoint_url = endpoint_url
        self.update_delay = update_delay
        self.max_concurrency = max_concurrency
        self.functions: dict[tuple[str, str, str], Function] = {}
        self.lock = threading.RLock()
        self._inflight_total = 0
        self._routes = self._build_routes()

    # ------------------------------------------------------------------------------------------
    # routing
    # ------------------------------------------------------------------------------------------
    def _build_routes(self):
        fn = r"(?P<fn>[^/]+)"
        table = [
            ("POST", r"/2015-03-31/functions/?", "CreateFunction", self.create_function),
            ("GET", r"/2015-03-31/functions/?", "ListFunctions", self.list_functions),
            ("GET", rf"/2015-03-31/functions/{fn}", "GetFunction", self.get_function),
            ("DELETE", rf"/2015-03-31/functions/{fn}", "DeleteFunction", self.delete_function),
            ("GET", rf"/2015-03-31/functions/{fn}/configuration", "GetFunctionConfiguration", self.get_configuration),
            (
                "PUT",
                rf"/2015-03-31/functions/{fn}/configuration",
                "UpdateFunctionConfiguration",
                self.update_configuration,
            ),
            ("PUT", rf"/2015-03-31/functions/{fn}/code", "UpdateFunctionCode", self.update_code),
            ("POST", rf"/2015-03-31/functions/{fn}/versions", "PublishVersion", self.publish_version),
            ("GET", rf"/2015-03-31/functions/{fn}/versions", "ListVersionsByFunction", self.list_versions),
            ("POST", rf"/2015-03-31/functions/{fn}/aliases", "CreateAlias", self.create_alias),
            ("GET", rf"/2015-03-31/functions/{fn}/aliases", "ListAliases", self.list_aliases),
            ("GET", rf"/2015-03-31/functions/{fn}/aliases/(?P<alias>[^/]+)", "GetAlias", self.get_alias),
            ("PUT", rf"/2015-03-31/functions/{fn}/aliases/(?P<alias>[^/]+)", "UpdateAlias", self.update_alias),
            ("DELETE", rf"/2015-03-31/functions/{fn}/aliases/(?P<alias>[^/]+)", "DeleteAlias", self.delete_alias),
            ("POST", rf"/2015-03-31/functions/{fn}/invocations", "Invoke", self.invoke_api),
            ("POST", rf"/2015-03-31/functions/{fn}/policy", "AddPermission", self.add_permission),
            ("GET", rf"/2015-03-31/functions/{fn}/policy", "GetPolicy", self.get_policy),
            (
                "DELETE",
                rf"/2015-03-31/functions/{fn}/policy/(?P<sid>[^/]+)",
                "RemovePermission",
                self.remove_permission,
            ),
            ("PUT", rf"/2017-10-31/functions/{fn}/concurrency", "PutFunctionConcurrency", self.put_concurrency),
            (
                "DELETE",
                rf"/2017-10-31/functions/{fn}/concurrency",
                "DeleteFunctionConcurrency",
                self.delete_concurrency,
            ),
            ("GET", rf"/2019-09-30/functions/{fn}/concurrency", "GetFunctionConcurrency", self.get_concurrency),
            (
                "PUT",
                rf"/2019-09-30/functions/{fn}/provisioned-concurrency",
                "PutProvisionedConcurrencyConfig",
                self.put_provisioned,
            ),
            (
                "GET",
                rf"/2019-09-30/functions/{fn}/provisioned-concurrency",
                "GetProvisionedConcurrencyConfig",
                self.get_provisioned,
            ),
            (
                "DELETE",
                rf"/2019-09-30/functions/{fn}/provisioned-concurrency",
                "DeleteProvisionedConcurrencyConfig",
                self.delete_provisioned,
            ),
            ("GET", r"/2017-03-31/tags/(?P<arn>.+)", "ListTags", self.list_tags),
            ("POST", r"/2017-03-31/tags/(?P<arn>.+)", "TagResource", self.tag_resource),
            ("DELETE", r"/2017-03-31/tags/(?P<arn>.+)", "UntagResource", self.untag_resource),
        ]
        return [(m, re.compile(f"^{p}$"), op, h) for m, p, op, h in table]

    def route(self, method: str, path: str):
        """(operation, handler, path params) for a Lambda request, or None if it is not one we serve."""
        for m, rx, op, handler in self._routes:
            if m == method:
                match = rx.match(path)
                if match:
                    return op, handler, {k: unquote(v) for k, v in match.groupdict().items()}
        return None

    @staticmethod
    def is_lambda_path(path: str) -> bool:
        return bool(
            re.match(
                r"^/(2015-03-31|2017-10-31|2019-09-30|2017-03-31|2019-09-25|2021-10-31|2018-10-31)/"
                r"(functions|tags|layers|event-source-mappings)",
                path,
            )
        )

    # ------------------------------------------------------------------------------------------
    # helpers
    # ------------------------------------------------------------------------------------------
    def _split(self, raw: str, region: str) -> tuple[str, str | None]:
        """Function name (or ARN, or partial ARN, possibly qualified) -> (name, qualifier in the name)."""
        raw = unquote(raw)
        m = re.match(
            r"^(?:arn:aws[a-z-]*:lambda:(?P<region>[a-z0-9-]+):)?(?:(?P<account>\d{12}):function:)?"
            r"(?P<name>[a-zA-Z0-9-_]+)(?::(?P<qual>\$LATEST|[a-zA-Z0-9-_]+))?$",
            raw,
        )
        if not m:
            raise validation(
                raw,
                "functionName",
                "Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?"
                "([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?",
            )
        if m["region"] and m["region"] != region:
            raise ApiError(
                "ResourceNotFoundException",
                f"Functions from '{m['region']}' are not reachable in this region ('{region}')",
                404,
            )
        return m["name"], m["qual"]

    def _function(self, account: str, region: str, raw: str) -> tuple[Function, str | None]:
        name, qual = self._split(raw, region)
        fn = self.functions.get((account, region, name))
        if fn is None:
            arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
            raise not_found(arn + (f":{qual}" if qual else ""))
        return fn, qual

    @staticmethod
    def _json(body: bytes) -> dict:
        if not body:
            return {}
        try:
            doc = json.loads(body)
        except ValueError:
            raise ApiError(
                "InvalidRequestContentException",
                "Could not parse request body into json: the request body is not valid JSON.",
                400,
            )
        if not isinstance(doc, dict):
            raise ApiError(
                "InvalidRequestContentException", "Could not parse request body into json: expected a JSON object.", 400
            )
        return doc

    def _render(self, fn: Function, snap: Snapshot, label: str) -> dict:
        cfg = copy.deepcopy(snap.config)
        cfg["FunctionName"] = fn.name
        cfg["FunctionArn"] = f"{fn.arn}:{label}" if label != "$LATEST" else fn.arn
        cfg["Version"] = label
        return {k: v for k, v in cfg.items() if v is not None and not k.startswith("_")}

    def _snapshot_for(self, fn: Function, qualifier: str | None) -> tuple[Snapshot, str]:
        if qualifier is None or qualifier == "$LATEST":
            return fn.latest, "$LATEST"
        if qualifier.isdigit():
            snap = fn.versions.get(qualifier)
            if snap is None:
                raise not_found(f"{fn.arn}:{qualifier}")
            return snap, qualifier
        alias = fn.aliases.get(qualifier)
        if alias is None:
            raise not_found(f"{fn.arn}:{qualifier}")
        return self._snapshot_for(fn, alias.function_version)

    @staticmethod
    def _check_revision(given: str | None, current: str, what: str) -> None:
        if given is not None and given != current:
            raise ApiError(
                "PreconditionFailedException",
                f"The Revision Id provided does not match the latest Revision Id. Call the {what} API to "
                "retrieve the latest Revision Id",
                412,
            )

    @staticmethod
    def _check_not_updating(fn: Function) -> None:
        cfg = fn.latest.config
        if cfg.get("State") == "Pending" or cfg.get("LastUpdateStatus") == "InProgress":
            raise ApiError(
                "ResourceConflictException",
                f"The operation cannot be performed at this time. An update is in progress for resource: {fn.arn}",
                409,
            )

    # ------------------------------------------------------------------------------------------
    # validation of configuration
    # ------------------------------------------------------------------------------------------
    def _validate_config(self, account: str, spec: dict, package_type: str) -> dict:
        """The stored config fields for the given CreateFunction/UpdateFunctionConfiguration parameters."""
        out: dict = {}
        if "MemorySize" in spec:
            v = spec["MemorySize"]
            if not isinstance(v, int) or v < 128:
                raise validation(v, "memorySize", "Member must have value greater than or equal to 128")
            if v > 10240:
                raise validation(v, "memorySize", "Member must have value less than or equal to 10240")
            out["MemorySize"] = v
        if "Timeout" in spec:
            v = spec["Timeout"]
            if not isinstance(v, int) or v < 1:
                raise validation(v, "timeout", "Member must have value greater than or equal to 1")
            if v > 900:
                raise validation(v, "timeout", "Member must have value less than or equal to 900")
            out["Timeout"] = v
        if "EphemeralStorage" in spec:
            v = (spec["EphemeralStorage"] or {}).get("Size")
            if not isinstance(v, int) or not 512 <= v <= 10240:
                raise validation(
                    v,
                    "ephemeralStorage.size",
                    "Member must have value greater than or equal to 512 and less than or equal to 10240",
                )
            out["EphemeralStorage"] = {"Size": v}
        if "Environment" in spec:
            variables = (spec["Environment"] or {}).get("Variables") or {}
            if not isinstance(variables, dict):
                raise ApiError("InvalidParameterValueException", "Environment.Variables must be a map of strings.")
            bad = [k for k in variables if not ENV_KEY.match(k)]
            if bad:
                raise validation(
                    bad[0],
                    "environment.variables",
                    "Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+",
                )
            reserved = sorted(k for k in variables if k in RESERVED_ENV)
            if reserved:
                raise ApiError(
                    "InvalidParameterValueException",
                    "Lambda was unable to configure your environment variables because the environment "
                    "variables you have provided contains reserved keys that are currently not supported "
                    f"for modification. Reserved keys used in this request: {', '.join(reserved)}",
                )
            size = sum(len(k.encode()) + len(str(v).encode()) for k, v in variables.items())
            if size > 4096:
                raise ApiError(
                    "InvalidParameterValueException",
                    "Lambda was unable to configure your environment variables because the environment "
                    f"variables you have provided exceeded the 4KB limit. String measured: {size} bytes",
                )
            out["Environment"] = {"Variables": {k: str(v) for k, v in variables.items()}} if variables else None
        if "Role" in spec:
            out["Role"] = self._validate_role(account, spec["Role"])
        if "Description" in spec:
            d = spec["Description"] or ""
            if len(d) > 256:
                raise validation(d, "description", "Member must have length less than or equal to 256")
            out["Description"] = d
        if "Handler" in spec:
            out["Handler"] = spec["Handler"]
        if "Runtime" in spec:
            out["Runtime"] = spec["Runtime"]
        if "TracingConfig" in spec:
            out["TracingConfig"] = {"Mode": (spec["TracingConfig"] or {}).get("Mode", "PassThrough")}
        if "Layers" in spec:
            out["Layers"] = [{"Arn": a, "CodeSize": 0} for a in spec["Layers"] or []] or None
        if "ImageConfig" in spec:
            if package_type != "Image":
                raise ApiError(
                    "InvalidParameterValueException",
                    "ImageConfig is only supported for functions with PackageType Image.",
                )
            ic = {
                k: v
                for k, v in (spec["ImageConfig"] or {}).items()
                if k in ("EntryPoint", "Command", "WorkingDirectory")
            }
            out["ImageConfigResponse"] = {"ImageConfig": ic} if ic else None
        if "LoggingConfig" in spec:
            out["LoggingConfig"] = self._validate_logging(spec["LoggingConfig"] or {}, spec.get("FunctionName"))
        return out

    def _validate_logging(self, lc: dict, name: str | None) -> dict:
        fmt = lc.get("LogFormat", "Text")
        if fmt not in ("Text", "JSON"):
            raise validation(fmt, "loggingConfig.logFormat", "Member must satisfy enum value set: [JSON, Text]")
        levels = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
        out = {"LogFormat": fmt}
        for key in ("ApplicationLogLevel", "SystemLogLevel"):
            if key in lc:
                if fmt != "JSON":
                    raise ApiError(
                        "InvalidParameterValueException",
                        f"{key} can only be set when LogFormat is JSON: set LoggingConfig.LogFormat to "
                        "JSON, or remove the log level.",
                    )
                allowed = levels if key == "ApplicationLogLevel" else ("DEBUG", "INFO", "WARN")
                if lc[key] not in allowed:
                    raise validation(
                        lc[key],
                        f"loggingConfig.{key[0].lower() + key[1:]}",
                        f"Member must satisfy enum value set: [{', '.join(allowed)}]",
                    )
                out[key] = lc[key]
        if fmt == "JSON":
            out.setdefault("ApplicationLogLevel", "INFO")
            out.setdefault("SystemLogLevel", "INFO")
        if lc.get("LogGroup"):
            out["LogGroup"] = lc["LogGroup"]
        elif name:
            out["LogGroup"] = f"/aws/lambda/{name}"
        return out

    def _validate_role(self, account: str, role: str) -> str:
        m = re.match(r"^arn:aws[a-z-]*:iam::(\d{12}):role/?[a-zA-Z_0-9+=,.@\-_/]+$", role or "")
        if not m:
            raise validation(
                role,
                "role",
                "Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+",
            )
        if m.group(1) != account:
            raise ApiError("AccessDeniedException", "Cross-account pass role is not allowed.", 403)
        from moto.iam.exceptions import NotFoundException as IAMNotFoundException
        from moto.iam.models import iam_backends

        try:
            iam_backends[account]["aws"].get_role_by_arn(role)
        except IAMNotFoundException:
            raise ApiError(
                "InvalidParameterValueException", "The role defined for the function cannot be assumed by Lambda."
            )
        return role

    def _resolve_code(self, account: str, region: str, code: dict, package_type: str) -> tuple[dict, dict]:
        """(code record, config fields CodeSha256/CodeSize) for a Code / UpdateFunctionCode request."""
        if package_type == "Image":
            if not code.get("ImageUri"):
                raise ApiError(
                    "InvalidParameterValueException",
                    "Please provide ImageUri when updating or creating a function with PackageType Image.",
                )
            try:
                resolved = self.code.resolve_image(code["ImageUri"], account, region)
            except CodeError as e:
                raise ApiError(e.api_error, e.message)
            image = self.code.registry.find_image(resolved.repo, resolved.digest, region, account)
            size = json.loads(image.image_manifest).get("config", {}).get("size", 0) if image else 0
            return (
                {"PackageType": "Image", "ImageUri": code["ImageUri"], "resolved": resolved},
                {"CodeSha256": resolved.digest.split(":", 1)[1], "CodeSize": size},
            )
        if code.get("S3Bucket"):
            data = self._s3_object(account, code["S3Bucket"], code.get("S3Key", ""))
            return (
                {"PackageType": "Zip", "zip": data},
                {"CodeSha256": CodeStore.zip_sha256(data), "CodeSize": len(data)},
            )
        if not code.get("ZipFile"):
            raise ApiError(
                "InvalidParameterValueException",
                "Please provide a source for function code (ZipFile) for a function with PackageType Zip.",
            )
        try:
            data = base64.b64decode(code["ZipFile"])
        except (ValueError, TypeError):
            raise ApiError("InvalidParameterValueException", "ZipFile is not valid base64.")
        if len(data) > 50 * 1024 * 1024:
            raise ApiError(
                "RequestTooLargeException",
                "Request must be smaller than 69905067 bytes for the CreateFunction operation",
                413,
            )
        return ({"PackageType": "Zip", "zip": data}, {"CodeSha256": CodeStore.zip_sha256(data), "CodeSize": len(data)})

    @staticmethod
    def _s3_object(account: str, bucket: str, key: str) -> bytes:
        from moto.s3.models import s3_backends

        try:
            obj = s3_backends[account]["aws"].get_object(bucket, key)
        except Exception:
            obj = None
        if obj is None:
            raise ApiError(
                "InvalidParameterValueException",
                f"Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: s3://{bucket}/{key} "
                "does not exist.",
            )
        return obj.value

    def wait_settled(self, account: str, region: str, name: str, limit: float = 60.0) -> None:
        """Block until the function's update is over (for CloudFormation, which waits as AWS's does)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            with self.lock:
                fn = self.functions.get((account, region, name))
                if fn is None:
                    return
                cfg = fn.latest.config
                if cfg.get("State") != "Pending" and cfg.get("LastUpdateStatus") != "InProgress":
                    return
            time.sleep(0.05)

    # ------------------------------------------------------------------------------------------
    # lifecycle
    # ------------------------------------------------------------------------------------------
    def create_function(self, account, region, params, query, headers, body):
        spec = self._json(body)
        name = spec.get("FunctionName")
        if not isinstance(name, str) or not name:
            raise validation(name, "functionName", "Member must not be null")
        name, _ = self._split(name, region)
        package_type = spec.get("PackageType", "Zip")
        if package_type not in ("Zip", "Image"):
            raise validation(package_type, "packageType", "Member must satisfy enum value set: [Image, Zip]")
        if "Role" not in spec:
            raise validation(None, "role", "Member must not be null")
        archs = spec.get("Architectures", ["x86_64"])
        if not isinstance(archs, list) or len(archs) != 1 or archs[0] not in ("x86_64", "arm64"):
            raise validation(
                archs,
                "architectures",
                "Member must have length less than or equal to 1, Member must satisfy enum value set: [x86_64, arm64]",
            )
        spec["FunctionName"] = name
        fields = self._validate_config(account, spec, package_type)
        code_rec, code_fields = self._resolve_code(account, region, spec.get("Code") or {}, package_type)
        with self.lock:
            if (account, region, name) in self.functions:
                raise ApiError("ResourceConflictException", f"Function already exist: {name}", 409)
            config = {
                "Runtime": None,
                "Role": None,
                "Handler": None,
                "Description": "",
                "Timeout": 3,
                "MemorySize": 128,
                "Environment": None,
                "TracingConfig": {"Mode": "PassThrough"},
                "PackageType": package_type,
                "Architectures": archs,
                "EphemeralStorage": {"Size": 512},
                "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{name}"},
                "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
            }
            config.update(fields)
            config.update(code_fields)
            config.update(
                {
                    "LastModified": _now(),
                    "RevisionId": str(uuid.uuid4()),
                    "State": "Pending",
                    "StateReason": "The function is being created.",
                    "StateReasonCode": "Creating",
                }
            )
            fn = Function(account, region, name, Snapshot(config, code_rec), tags=spec.get("Tags") or {})
            self.functions[(account, region, name)] = fn
            published = None
            if spec.get("Publish"):
                published = self._publish(fn, None)
            self._schedule_update(fn)
            out = self._render(fn, published or fn.latest, published_label(fn, published))
        return 201, out

    def _schedule_update(self, fn: Function) -> None:
        fn.update_token += 1
        token = fn.update_token
        timer = threading.Timer(clock.real(self.update_delay), self._finish_update, args=(fn, token))
        timer.daemon = True
        timer.start()

    def _finish_update(self, fn: Function, token: int) -> None:
        """End of the update: start the new code once; Successful/Active if it starts, Failed if not."""
        with self.lock:
            if token != fn.update_token or self.functions.get((fn.account, fn.region, fn.name)) is not fn:
                return
            snap = fn.latest.copy()
        error = None
        try:
            sandbox = self._new_sandbox(fn, snap, "$LATEST")
            sandbox.stop()
        except CodeError as e:
            error = (e.reason_code, e.message)
        except InitFailed as e:
            error = ("FunctionError", f"{e.error_type}: {e.message}" if e.error_type not in e.message else e.message)
        with self.lock:
            if token != fn.update_token:
                return
            cfg = fn.latest.config
            creating = cfg.get("State") == "Pending"
            for k in ("StateReason", "StateReasonCode", "LastUpdateStatusReason", "LastUpdateStatusReasonCode"):
                cfg.pop(k, None)
            if error is None:
                cfg["State"] = "Active"
                cfg["LastUpdateStatus"] = "Successful"
                fn.active = fn.latest.copy()
                self._retire(fn, "$LATEST")
            elif creating:
                cfg["State"] = "Failed"
                cfg["StateReasonCode"], cfg["StateReason"] = error
                cfg["LastUpdateStatus"] = "Failed"
                cfg["LastUpdateStatusReasonCode"], cfg["LastUpdateStatusReason"] = error
            else:
                cfg["LastUpdateStatus"] = "Failed"
                cfg["LastUpdateStatusReasonCode"], cfg["LastUpdateStatusReason"] = error
            for snap in fn.versions.values():  # versions published while the update was in progress
                if snap.config.get("RevisionId") in fn.pending_versions:
                    for k in (
                        "State",
                        "StateReason",
                        "StateReasonCode",
                        "LastUpdateStatus",
                        "LastUpdateStatusReason",
                        "LastUpdateStatusReasonCode",
                    ):
                        if k in cfg:
                            snap.config[k] = cfg[k]
                        else:
                            snap.config.pop(k, None)
            fn.pending_versions = set()

    def _begin_update(self, fn: Function) -> None:
        cfg = fn.latest.config
        cfg["LastModified"] = _now()
        cfg["RevisionId"] = str(uuid.uuid4())
        cfg["LastUpdateStatus"] = "InProgress"
        for k in ("LastUpdateStatusReason", "LastUpdateStatusReasonCode"):
            cfg.pop(k, None)
        self._schedule_update(fn)

    def update_configuration(self, account, region, params, query, headers, body):
        spec = self._json(body)
        with self.lock:
            fn, _ = self._function(account, region, params["fn"])
            self._check_revision(spec.get("RevisionId"), fn.latest.config["RevisionId"], "GetFunction")
            self._check_not_updating(fn)
            spec.setdefault("FunctionName", fn.name)
            if "LoggingConfig" in spec and not (spec["LoggingConfig"] or {}).get("LogGroup"):
                spec["LoggingConfig"] = dict(spec["LoggingConfig"] or {})
                spec["LoggingConfig"]["LogGroup"] = fn.latest.config["LoggingConfig"].get("LogGroup")
            fields = self._validate_config(account, spec, fn.latest.config["PackageType"])
            fn.latest.config.update(fields)
            self._begin_update(fn)
            return 200, self._render(fn, fn.latest, "$LATEST")

    def update_code(self, account, region, params, query, headers, body):
        spec = self._json(body)
        with self.lock:
            fn, _ = self._function(account, region, params["fn"])
            self._check_revision(spec.get("RevisionId"), fn.latest.config["RevisionId"], "GetFunction")
            self._check_not_updating(fn)
            package_type = fn.latest.config["PackageType"]
            if package_type == "Image" and "ZipFile" in spec:
                raise ApiError(
                    "InvalidParameterValueException",
                    "Please provide ImageUri when updating a function with packageType Image.",
                )
            if package_type == "Zip" and "ImageUri" in spec:
                raise ApiError(
                    "InvalidParameterValueException",
                    "Please don't provide ImageUri when updating a function with packageType Zip.",
                )
            code_rec, code_fields = self._resolve_code(account, region, spec, package_type)
            if "Architectures" in spec:
                archs = spec["Architectures"]
                if not isinstance(archs, list) or len(archs) != 1 or archs[0] not in ("x86_64", "arm64"):
                    raise validation(archs, "architectures", "Member must satisfy enum value set: [x86_64, arm64]")
            if spec.get("DryRun"):
                preview = fn.latest.copy()
                preview.config.update(code_fields)
                return 200, self._render(fn, preview, "$LATEST")
            if "Architectures" in spec:
                fn.latest.config["Architectures"] = spec["Architectures"]
            fn.latest.code = code_rec
            fn.latest.config.update(code_fields)
            self._begin_update(fn)
            if spec.get("Publish"):
                snap = self._publish(fn, None)
                return 200, self._render(fn, snap, published_label(fn, snap))
            return 200, self._render(fn, fn.latest, "$LATEST")

    def _publish(self, fn: Function, description: str | None) -> Snapshot:
        if fn.versions:
            last_label = str(fn.next_version - 1)
            last = fn.versions.get(last_label)
            if last is not None and last.fingerprint() == fn.latest.fingerprint():
                return last
        snap = fn.latest.copy()
        label = str(fn.next_version)
        fn.next_version += 1
        snap.config["RevisionId"] = str(uuid.uuid4())
        snap.config["LastModified"] = _now()
        if description is not None:
            snap.config["Description"] = description
        snap.config["_label"] = label
        fn.versions[label] = snap
        if fn.latest.config.get("LastUpdateStatus") == "InProgress" or fn.latest.config.get("State") == "Pending":
            fn.pending_versions.add(snap.config["RevisionId"])
        return snap

    def publish_version(self, account, region, params, query, headers, body):
        spec = self._json(body)
        with self.lock:
            fn, _ = self._function(account, region, params["fn"])
            self._check_revision(spec.get("RevisionId"), fn.latest.config["RevisionId"], "GetFunction")
            self._check_not_updating(fn)
            sha = spec.get("CodeSha256")
            current = fn.latest.config["CodeSha256"]
            if sha is not None and sha != current:
                raise ApiError(
                    "InvalidParameterValueException",
                    f"CodeSHA256 ({sha}) is different from current CodeSHA256 in $LATEST ({current}). "
                    "Please try again with the current CodeSHA256.",
                )
            snap = self._publish(fn, spec.get("Description"))
            return 201, self._render(fn, snap, snap.config["_label"])

    def get_function(self, account, region, params, query, headers, body):
        with self.lock:
            fn, qual = self._function(account, region, params["fn"])
            qual = query.get("Qualifier") or qual
            snap, label = self._snapshot_for(fn, qual)
            out = {"Configuration": self._render(fn, snap, label)}
            if snap.code["PackageType"] == "Image":
                resolved = snap.code["resolved"]
                out["Code"] = {
                    "RepositoryType": "ECR",
                    "ImageUri": snap.code["ImageUri"],
                    "ResolvedImageUri": resolved.resolved_uri,
                }
            else:
                out["Code"] = {
                    "RepositoryType": "S3",
                    "Location": f"{self.endpoint_url}/_local/lambda-code/{fn.name}/{label}",
                }
            if fn.tags:
                out["Tags"] = dict(fn.tags)
            if fn.reserved is not None:
                out["Concurrency"] = {"ReservedConcurrentExecutions": fn.reserved}
            return 200, out

    def code_of(self, account: str, region: str, name: str, label: str) -> bytes | None:
        """A Zip function's package, for GetFunction's Code.Location."""
        with self.lock:
            fn = self.functions.get((account, region, name))
            if fn is None:
                return None
            snap = fn.latest if label == "$LATEST" else fn.versions.get(label)
            if snap is None or snap.code.get("PackageType") != "Zip":
                return None
            return snap.code["zip"]

    def get_configuration(self, account, region, params, query, headers, body):
        with self.lock:
            fn, qual = self._function(account, region, params["fn"])
            snap, label = self._snapshot_for(fn, query.get("Qualifier") or qual)
            return 200, self._render(fn, snap, label)

    def list_versions(self, account, region, params, query, headers, body):
        with self.lock:
            fn, _ = self._function(account, region, params["fn"])
            items = [self._render(fn, fn.latest, "$LATEST")]
            items += [self._render(fn, s, label) for label, s in sorted(fn.versions.items(), key=lambda kv: int(kv[0]))]
            page, marker = _paginate(items, query, 50)
            out = {"Versions": page}
            if marker:
                out["NextMarker"] = marker
            return 200, out

    def list_functions(self, account, region, params, query, headers, body):
        with self.lock:
            items = [
                self._render(fn, fn.latest, "$LATEST")
                for (a, r, _), fn in sorted(self.functions.items())
                if a == account and r == region
            ]
            page, marker = _paginate(items, query, 50)
            out = {"Functions": page}
            if marker:
                out["NextMarker"] = marker
            return 200, out

    def delete_function(self, account, region, params, query, headers, body):
        with self.lock:
            fn, qual = self._function(account, region, params["fn"])
            qual = query.get("Qualifier") or qual
            if qual is None:
                del self.functions[(account, region, fn.name)]
                fn.update_token += 1
                for key in list(fn.pool):
                    self._retire(fn, key[0])
                return 204, None
            if qual == "$LATEST":
                raise ApiError(
                    "InvalidParameterValueException", "$LATEST version cannot be deleted without deleting the function."
                )
            if qual not in fn.versions:
                raise not_found(f"{fn.arn}:{qual}")
            users = sorted(
                a.name
                for a in fn.aliases.values()
                if a.function_version == qual or qual in (a.routing.get("AdditionalVersionWeights") or {})
            )
            if users:
                raise ApiError(
                    "ResourceConflictException",
                    f"Unable to delete version because the following aliases reference it: {users}",
                    409,
                )
            del fn.versions[qual]
            self._retire(fn, qual)
            return 204, None

    # ------------------------------------------------------------------------------------------
    # aliases
    # ------------------------------------------------------------------------------------------
    def _validate_alias_target(self, fn: Function, version: str, routing) -> dict:
        if version != "$LATEST" and version not in fn.versions:
            raise not_found(f"{fn.arn}:{version}")
        if routing is None:
            return {}
        if not isinstance(routing, dict):
            raise validation(routing, "routingConfig", "Member must be a structure")
        weights = routing.get("AdditionalVersionWeights") or {}
        if not isinstance(weights, dict):
            raise validation(weights, "routingConfig.additionalVersionWeights", "Member must be a map")
        if not weights:
            return {}
        shown = "{" + ", ".join(f"{k}={v}" for k, v in weights.items()) + "}"
        if len(weights) > 1:
            raise validation(
                shown, "routingConfig.additionalVersionWeights", "Member must have length less than or equal to 1"
            )
        ((extra, weight),) = weights.items()
        if not re.fullmatch(r"[0-9]+", str(extra)):
            raise validation(
                shown,
                "routingConfig.additionalVersionWeights",
                "Map keys must satisfy constraint: [Member must have length less than or equal to 1024, "
                "Member must have length greater than or equal to 1, Member must satisfy regular "
                "expression pattern: [0-9]+]",
            )
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not 0.0 <= float(weight) <= 1.0:
            raise validation(
                shown,
                "routingConfig.additionalVersionWeights",
                "Map value must satisfy constraint: [Member must have value less than or equal to 1.0, "
                "Member must have value greater than or equal to 0.0, Member must not be null]",
            )
        if version == "$LATEST":
            raise ApiError(
                "InvalidParameterValueException",
                "$LATEST is not supported for an alias pointing to more than 1 version",
            )
        if extra == version:
            raise ApiError(
                "InvalidParameterValueException",
                f"Alias cannot point to the same version twice: FunctionVersion {version} is also the "
                "additional version in RoutingConfig.",
            )
        if extra not in fn.versions:
            raise not_found(f"{fn.arn}:{extra}")
        # "Both versions must have the same execution role" and "the same dead-letter queue configuration, or
        # none" (Lambda Developer Guide, alias routing). The message is local AWS's; AWS's is not documented.
        a, b = fn.versions[version].config, fn.versions[extra].config
        if a.get("Role") != b.get("Role"):
            raise ApiError(
                "InvalidParameterValueException",
                f"An alias can route to versions {version} and {extra} only if they have the same execution role "
                f"({a.get('Role')} and {b.get('Role')})",
            )
        if (a.get("DeadLetterConfig") or {}) != (b.get("DeadLetterConfig") or {}):
            raise ApiError(
                "InvalidParameterValueException",
                f"An alias can route to versions {version} and {extra} only if they have the same dead-letter "
                "queue configuration",
            )
        return {"AdditionalVersionWeights": {extra: float(weight)}}

    def _alias_json(self, fn: Function, alias: Alias) -> dict:
        out = {
            "AliasArn": f"{fn.arn}:{alias.name}",
            "Name": alias.name,
            "FunctionVersion": alias.function_version,
            "Description": alias.description,
            "RevisionId": alias.revision_id,
        }
        if alias.routing:
            out["RoutingConfig"] = copy.deepcopy(alias.routing)
        return out

    def create_alias(self, account, region, params, query, headers, body):
        spec = self._json(body)
        with self.lock:
            fn, _ = self._function(account, region, params["fn"])
            name = spec.get("Name")
            if not isinstance(name, str) or not ALIAS_NAME.match(name):
                raise validation(
                    name, "name", "Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)"
                )
            version = spec.get("FunctionVersion")
            if not isinstance(version, str):
                raise validation(version, "functionVersion", "Member must not be null")
            routing = self._validate_alias_target(fn, version, spec.get("RoutingConfig"))
            if name in fn.aliases:
                raise ApiError("ResourceConflictException", f"Alias already exists: {fn.arn}:{name}", 409)
            alias = Alias(name, version, spec.get("Description", ""), routing)
            fn.aliases[name] = alias
            return 201, self._alias_json(fn, alias)

    def _alias(self, fn: Function, name: str) -> Alias:
        alias = fn.aliases.get(name)
        if alias is None:
            raise ApiError("ResourceNotFoundException", f"Alias not found: {fn.arn}:{name}", 404)
        return alias

    def get_alias(self, account, region, params, query, headers, body):
        with self.lock:
            fn, _ = self._function(account, region, params["fn"])
            return 200, self._alias_json(fn, self._alias(fn, params["alias"]))

    def update_alias(self, account, region, params, query, headers, body):
        spec = self._json(body)
        with self.lock:
            fn, _ = self._function(account, region, params["fn"])
            alias = self._alias(fn, params["alias"])
            self._check_revision(spec.get("RevisionId"), alias.revision_id, "GetAlias")
            version = spec.get("FunctionVersion") or alias.function_version
            routing = self._validate_alias_target(
                fn, version, spec["RoutingConfig"] if "RoutingConfig" in spec else alias.routing
            )
            alias.function_version = version
            alias.routing = routing
            if "Description" in spec:
                alias.description = spec["Description"]
            alias.revision_id = str(uuid.uuid4())
            return 200, self._alias_json(fn, alias)

    def delete_alias(self, account, region, params, query, headers, body):
        with self.lock:
            fn, _ = self._function(account, region, params["fn"])
            fn.aliases.pop(params["alias"], None)
            return 204, None

    def list_aliases(self, account, region, params, query, headers, body):
        with self.lock:
            fn, _ = self._function(account, region, params["fn"])
            want = query.get("FunctionVersion")
            items = [
                self._alias_json(fn, a)
                for a in sorted(fn.aliases.values(), key=lambda a: a.name)
                if want is None or a.function_version == want
            ]
            page, marker = _paginate(items, query, 50)
            out = {"Aliases": page}
            if marker:
                out["NextMarker"] = marker
            return 200, out

    # ------------------------------------------------------------------------------------------
    # concurrency, policy, tags
    # ------------------------------------------------------------------------------------------
    def put_concurrency(self, account, region, params, query, headers, body):
        spec = self._json(body)
        n = spec.get("ReservedConcurrentExecutions")
        if not isinstance(n, int) or n < 0:
            raise validation(n, "reservedConcurrentExecutions", "Member must have value greater than or equal to 0")
        if n > self.max_concurrency:
            raise ApiError(
                "InvalidParameterValueException",
                f"Specified ReservedConcurrentExecutions for function decreases account's "
                f"UnreservedConcurrentExecution below its minimum value of [0]; local AWS allows at most "
                f"{self.max_concurrency}.",
            )
        with self.lock:
            fn, _ = self._function(account, region, params["fn"])
            fn.reserved = n
            return 200, {"ReservedConcurrentExecutions": n}

    def delete_concurrency(self, account, region, params, query, headers, body):
        with self.lock:
            fn, _ = self._function(account, region, params["fn"])
            fn.reserved = None
            return 204, None

    def get_concurrency(self, account, region, params, query, headers, body):
        with self.lock:
            fn, _ = self._function(account, region, params["fn"])
            return 200, ({"ReservedConcurrentExecutions": fn.reserved} if fn.reserved is not None else {})

    def _provisioned_qualifier(self, fn: Function, query: dict) -> str:
        q = query.get("Qualifier")
        if not q:
            raise ApiError("InvalidParameterValueException", "Qualifier is required (a version or an alias).")
        if q == "$LATEST":
            raise ApiError(
                "InvalidParameterValueException",
                "Provisioned Concurrency Configs cannot be applied to unpublished function versions.",
            )
        if q not in fn.versions and q not in fn.aliases:
            raise ApiError("ResourceNotFoundException", f"Function not found: {fn.arn}:{q}", 404)
        return q

    def put_provisioned(self, account, region, params, query, headers, body):
        """Provisioned concurrency on a version or an alias: IN_PROGRESS, then READY after the update delay
        (FAILED if more is asked than local AWS's concurrency). Lambda refuses it on an alias with weights."""
        spec = self._json(body)
        n = spec.get("ProvisionedConcurrentExecutions")
        if not isinstance(n, int) or n < 1:
            raise validation(n, "provisionedConcurrentExecutions", "Member must have value greater than or equal to 1")
        with self.lock:
            fn, _ = self._function(account, region, params["fn"])
            q = self._provisioned_qualifier(fn, query)
            alias = fn.aliases.get(q)
            if alias is not None and (alias.routing or {}).get("AdditionalVersionWeights"):
                raise ApiError(
                    "ResourceConflictException",
                    "Alias with weights can not be used with Provisioned Concurrency",
                    409,
                )
            now = _now()
            config = {
                "RequestedProvisionedConcurrentExecutions": n,
                "AvailableProvisionedConcurrentExecutions": 0,
                "AllocatedProvisionedConcurrentExecutions": 0,
                "Status": "IN_PROGRESS",
                "LastModified": now,
            }
            fn.provisioned[q] = config
            token = object()
            config["_token"] = token
        timer = threading.Timer(clock.real(self.update_delay), self._finish_provisioning, args=(fn, q, token))
        timer.daemon = True
        timer.start()
        return 202, {k: v for k, v in config.items() if not k.startswith("_")}

    def _finish_provisioning(self, fn: Function, q: str, token) -> None:
        with self.lock:
            config = fn.provisioned.get(q)
            if config is None or config.get("_token") is not token:
                return
            n = config["RequestedProvisionedConcurrentExecutions"]
            if n > self.max_concurrency:
                config["Status"] = "FAILED"
                config["StatusReason"] = (
                    f"FUNCTION_ERROR_INIT_FAILURE: cannot allocate {n} provisioned concurrent executions; "
                    f"local AWS has {self.max_concurrency}"
                )
            else:
                config["Status"] = "READY"
                config["AllocatedProvisionedConcurrentExecutions"] = n
                config["AvailableProvisionedConcurrentExecutions"] = n
            config["LastModified"] = _now()

    def get_provisioned(self, account, region, params, query, headers, body):
        with self.lock:
            fn, _ = self._function(account, region, params["fn"])
            if query.get("List") == "ALL":  # ListProvisionedConcurrencyConfigs
                items = [
                    {"FunctionArn": f"{fn.arn}:{q}"} | {k: v for k, v in c.items() if not k.startswith("_")}
                    for q, c in sorted(fn.provisioned.items())
                ]
                page, marker = _paginate(items, query, 50)
                return 200, {"ProvisionedConcurrencyConfigs": page} | ({"NextMarker": marker} if marker else {})
            q = self._provisioned_qualifier(fn, query)
            config = fn.provisioned.get(q)
            if config is None:
                raise ApiError(
                    "ProvisionedConcurrencyConfigNotFoundException",
                    f"No Provisioned Concurrency Config found for this function: {fn.arn}:{q}",
                    404,
                )
            return 200, {k: v for k, v in config.items() if not k.startswith("_")}

    def delete_provisioned(self, account, region, params, query, headers, body):
        with self.lock:
            fn, _ = self._function(account, region, params["fn"])
            q = self._provisioned_qualifier(fn, query)
            fn.provisioned.pop(q, None)
            return 204, None

    def add_permission(self, account, region, params, query, headers, body):
        spec = self._json(body)
        with self.lock:
            fn, _ = self._function(account, region, params["fn"])
            sid = spec.get("StatementId")
            if not sid or not spec.get("Action") or not spec.get("Principal"):
                raise ApiError("InvalidParameterValueException", "StatementId, Action and Principal are required.")
            if any(s["Sid"] == sid for s in fn.policy):
                raise ApiError(
                    "ResourceConflictException",
                    f"The statement id ({sid}) provided already exists. Please provide a new statement id, "
                    "or remove the existing statement.",
                    409,
                )
            principal = spec["Principal"]
            statement = {
                "Sid": sid,
                "Effect": "Allow",
                "Principal": {"Service": principal} if principal.endswith(".amazonaws.com") else {"AWS": principal},
                "Action": spec["Action"],
                "Resource": fn.arn + (f":{query['Qualifier']}" if query.get("Qualifier") else ""),
            }
            condition = {}
            if spec.get("SourceArn"):
                condition.setdefault("ArnLike", {})["AWS:SourceArn"] = spec["SourceArn"]
            if spec.get("SourceAccount"):
                condition.setdefault("StringEquals", {})["AWS:SourceAccount"] = spec["SourceAccount"]
            if condition:
                statement["Condition"] = condition
            fn.policy.append(statement)
            fn.policy_revision = str(uuid.uuid4())
            return 201, {"Statement": json.dumps(statement)}

    def get_policy(self, account, region, params, query, headers, body):
        with self.lock:
            fn, _ = self._function(account, region, params["fn"])
            if not fn.policy:
                raise ApiError("ResourceNotFoundException", "The resource you requested does not exist.", 404)
            doc = {"Version": "2012-10-17", "Id": "default", "Statement": fn.policy}
            return 200, {"Policy": json.dumps(doc), "RevisionId": fn.policy_revision}

    def remove_permission(self, account, region, params, query, headers, body):
        with self.lock:
            fn, _ = self._function(account, region, params["fn"])
            before = len(fn.policy)
            fn.policy = [s for s in fn.policy if s["Sid"] != params["sid"]]
            if len(fn.policy) == before:
                raise ApiError(
                    "ResourceNotFoundException", f"Statement {params['sid']} is not found in resource policy.", 404
                )
            fn.policy_revision = str(uuid.uuid4())
            return 204, None

    def allows(self, fn: Function, service_principal: str, source_arn: str) -> bool:
        """Whether the function's resource policy lets a service (events.amazonaws.com) invoke it."""
        for s in fn.policy:
            if s.get("Principal", {}).get("Service") != service_principal:
                continue
            if s.get("Action") not in ("lambda:InvokeFunction", "lambda:*"):
                continue
            want = s.get("Condition", {}).get("ArnLike", {}).get("AWS:SourceArn")
            if want and not re.fullmatch(re.escape(want).replace(r"\*", ".*"), source_arn):
                continue
            return True
        return False

    def _by_arn(self, account, region, arn: str) -> Function:
        fn, _ = self._function(account, region, arn)
        return fn

    def list_tags(self, account, region, params, query, headers, body):
        with self.lock:
            return 200, {"Tags": dict(self._by_arn(account, region, params["arn"]).tags)}

    def tag_resource(self, account, region, params, query, headers, body):
        spec = self._json(body)
        with self.lock:
            self._by_arn(account, region, params["arn"]).tags.update(spec.get("Tags") or {})
            return 204, None

    def untag_resource(self, account, region, params, query, headers, body):
        with self.lock:
            fn = self._by_arn(account, region, params["arn"])
            for key in query.get("tagKeys__all", []):
                fn.tags.pop(key, None)
            return 204, None

    # ------------------------------------------------------------------------------------------
    # invoke
    # ------------------------------------------------------------------------------------------
    def invoke_api(self, account, region, params, query, headers, body):
        kind = headers.get("x-amz-invocation-type", "RequestResponse")
        if kind not in ("RequestResponse", "Event", "DryRun"):
            raise validation(
                kind, "invocationType", "Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
            )
        limit = SYNC_PAYLOAD_LIMIT if kind == "RequestResponse" else ASYNC_PAYLOAD_LIMIT
        if len(body) > limit:
            raise ApiError(
                "RequestTooLargeException",
                f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
                413,
            )
        if body:
            try:
                json.loads(body)
            except ValueError:
                raise ApiError(
                    "InvalidRequestContentException",
                    "Could not parse request body into json: the payload is not valid JSON.",
                    400,
                )
        fn, qual = self._function(account, region, params["fn"])
        qual = query.get("Qualifier") or qual
        if kind == "DryRun":
            with self.lock:
                self._snapshot_for(fn, qual)
            return 204, None, {}
        if kind == "Event":
            with self.lock:
                self._snapshot_for(fn, qual)
            threading.Thread(target=self._invoke_quietly, args=(fn, qual, body), daemon=True).start()
            return 202, None, {}
        outcome, version, tail = self.invoke(
            fn,
            qual,
            body,
            tail=headers.get("x-amz-log-type") == "Tail",
            client_context=headers.get("x-amz-client-context"),
        )
        extra = {"X-Amz-Executed-Version": version}
        if outcome.function_error:
            extra["X-Amz-Function-Error"] = outcome.function_error
        if tail is not None:
            extra["X-Amz-Log-Result"] = base64.b64encode(tail.encode()[-4096:]).decode()
        return 200, outcome.payload, extra

    ASYNC_RETRY_DELAYS = (1.0, 2.0)  # Lambda retries a failed asynchronous invocation twice (after 1 and 2 min)

    def _invoke_quietly(self, fn, qual, body):
        """An asynchronous invocation: function errors and throttles are retried twice, as Lambda does."""
        for delay in (*self.ASYNC_RETRY_DELAYS, None):
            try:
                outcome, _, _ = self.invoke(fn, qual, body)
                if outcome.function_error is None:
                    return
            except ApiError as e:
                if e.code != "TooManyRequestsException":
                    return
            if delay is not None:
                clock.sleep(delay)

    def invoke_event(self, account: str, region: str, function_arn: str, payload: bytes) -> None:
        """An asynchronous invocation from another service (EventBridge). Raises ApiError if it cannot be queued."""
        fn, qual = self._function(account, region, function_arn)
        with self.lock:
            self._snapshot_for(fn, qual)
        threading.Thread(target=self._invoke_quietly, args=(fn, qual, payload), daemon=True).start()

    def _choose(self, fn: Function, qual: str | None) -> tuple[Snapshot, str, str | None]:
        """(snapshot to run, executed version, alias name) for an invocation."""
        if qual is None or qual == "$LATEST":
            cfg = fn.latest.config
            if fn.active is None:
                state = cfg.get("State")
                reason = f" StateReason: {cfg.get('StateReason')}" if cfg.get("StateReason") else ""
                raise ApiError(
                    "ResourceConflictException",
                    "The operation cannot be performed at this time. The function is currently in the "
                    f"following state: {state}.{reason}",
                    409,
                )
            return fn.active, "$LATEST", None
        if qual.isdigit():
            snap = fn.versions.get(qual)
            if snap is None:
                raise not_found(f"{fn.arn}:{qual}")
            return snap, qual, None
        alias = fn.aliases.get(qual)
        if alias is None:
            raise not_found(f"{fn.arn}:{qual}")
        version = alias.function_version
        weights = alias.routing.get("AdditionalVersionWeights") or {}
        for extra, weight in weights.items():
            if random.random() < weight:
                version = extra
        snap, executed, _ = self._choose(fn, version)
        return snap, executed, alias.name

    def invoke(
        self, fn: Function, qual: str | None, payload: bytes, tail: bool = False, client_context: str | None = None
    ) -> tuple[Outcome, str, str | None]:
        with self.lock:
            snap, version, alias = self._choose(fn, qual)
            state = snap.config.get("State")
            if state == "Pending":
                raise ApiError(
                    "ResourceConflictException",
                    "The operation cannot be performed at this time. The function is currently in the following "
                    "state: Pending",
                    409,
                )
            if state == "Failed":
                raise ApiError(
                    "ResourceConflictException",
                    f"The operation cannot be performed at this time. The function is in the Failed "
                    f"state: {snap.config.get('StateReason')}",
                    409,
                )
            throttled = (
                fn.reserved is not None and fn.inflight >= fn.reserved
            ) or self._inflight_total >= self.max_concurrency
            if throttled:
                telemetry.put_invocation_metrics(
                    fn.account, fn.region, fn.name, qual, alias, version, error=False, duration_ms=None, throttled=True
                )
                USAGE.throttle(fn.name)
                reason = (
                    "ReservedFunctionConcurrentInvocationLimitExceeded"
                    if fn.reserved is not None and fn.inflight >= fn.reserved
                    else "ConcurrentInvocationLimitExceeded"
                )
                raise ApiError("TooManyRequestsException", "Rate Exceeded.", 429, {"Reason": reason, "Type": "User"})
            fn.inflight += 1
            self._inflight_total += 1
            sandbox = self._idle_sandbox(fn, snap, version)
        request_id = str(uuid.uuid4())
        lines: list[str] = []
        try:
            if sandbox is None:
                try:
                    sandbox = self._new_sandbox(fn, snap, version)
                except (CodeError, InitFailed) as e:
                    if isinstance(e, CodeError):
                        err = {
                            "errorType": "Runtime.InvalidEntrypoint"
                            if e.reason_code == "InvalidEntrypoint"
                            else "InvalidImage",
                            "errorMessage": e.message,
                        }
                    else:
                        err = (
                            json.loads(e.payload)
                            if _is_json(e.payload)
                            else {"errorType": e.error_type, "errorMessage": e.message}
                        )
                    outcome = Outcome(json.dumps(err).encode(), "Unhandled", 0.0, None, 0)
                    telemetry.put_invocation_metrics(
                        fn.account,
                        fn.region,
                        fn.name,
                        qual,
                        alias,
                        version,
                        error=True,
                        duration_ms=0.0,
                        throttled=False,
                    )
                    return outcome, version, json.dumps(err) if tail else None
                with self.lock:
                    fn.pool.setdefault((version, snap.config["RevisionId"]), []).append(sandbox)
            sandbox.collector = lines
            stream = sandbox.stream
            lines.append(stream.platform("start", request_id, version))
            outcome = sandbox.invoke(payload, request_id, client_context)
            memory = snap.config.get("MemorySize", 128)
            lines.append(stream.platform("end", request_id, version))
            lines.append(
                stream.platform(
                    "report",
                    request_id,
                    version,
                    durationMs=round(outcome.duration_ms, 2),
                    billedDurationMs=max(1, int(outcome.duration_ms + 0.999)),
                    memorySizeMB=memory,
                    maxMemoryUsedMB=outcome.max_memory_mb,
                    initDurationMs=round(outcome.init_duration_ms, 2) if outcome.init_duration_ms else None,
                )
            )
            telemetry.put_invocation_metrics(
                fn.account,
                fn.region,
                fn.name,
                qual,
                alias,
                version,
                error=outcome.function_error is not None,
                duration_ms=outcome.duration_ms,
                throttled=False,
            )
            USAGE.invocation(fn.name, outcome.duration_ms, outcome.init_duration_ms, outcome.max_memory_mb)
            return outcome, version, "\n".join(lines) if tail else None
        finally:
            with self.lock:
                fn.inflight -= 1
                self._inflight_total -= 1
                if sandbox is not None:
                    sandbox.collector = None
                    sandbox.busy = False
            if sandbox is not None and sandbox.dead:
                sandbox.stop()  # retired while it served this invocation

    def _idle_sandbox(self, fn: Function, snap: Snapshot, version: str) -> Sandbox | None:
        pool = fn.pool.setdefault((version, snap.config["RevisionId"]), [])
        pool[:] = [s for s in pool if not s.dead]
        for s in pool:
            if not s.busy:
                s.busy = True
                return s
        return None

    def _new_sandbox(self, fn: Function, snap: Snapshot, version: str) -> Sandbox:
        cfg = snap.config
        if snap.code["PackageType"] == "Image":
            ic = (cfg.get("ImageConfigResponse") or {}).get("ImageConfig") or {}
            artifact = self.code.image_artifact(snap.code["resolved"], ic)
            task_root = "/var/task"
        else:
            artifact = self.code.zip_artifact(snap.code["zip"])
            task_root = str(artifact.root)
        logging_cfg = cfg.get("LoggingConfig") or {}
        json_logs = logging_cfg.get("LogFormat") == "JSON"
        stream = telemetry.LogStream(
            fn.account, fn.region, logging_cfg.get("LogGroup") or f"/aws/lambda/{fn.name}", version, json_logs
        )
        env = dict(artifact.env)
        env.setdefault("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin")
        env.update(
            {
                "LANG": "en_US.UTF-8",
                "TZ": ":UTC",
                "LAMBDA_TASK_ROOT": task_root,
                "LAMBDA_RUNTIME_DIR": "/var/runtime",
                "AWS_REGION": fn.region,
                "AWS_DEFAULT_REGION": fn.region,
                "AWS_LAMBDA_FUNCTION_NAME": fn.name,
                "AWS_LAMBDA_FUNCTION_VERSION": version,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(cfg.get("MemorySize", 128)),
                "AWS_LAMBDA_LOG_GROUP_NAME": stream.group,
                "AWS_LAMBDA_LOG_STREAM_NAME": stream.stream,
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_LAMBDA_LOG_FORMAT": logging_cfg.get("LogFormat", "Text"),
                # The execution role's session, as Lambda hands it to the function: local AWS authorizes every
                # call signed with it against that role's policies (iam.py).
                **iam.SESSIONS.issue(cfg["Role"], fn.name).env(),
                # The function reaches AWS at local AWS, as a deployed function reaches the regional endpoints.
                "AWS_ENDPOINT_URL": self.endpoint_url,
            }
        )
        if cfg.get("Handler"):
            env["_HANDLER"] = cfg["Handler"]
        if snap.code["PackageType"] == "Zip":
            env["AWS_EXECUTION_ENV"] = f"AWS_Lambda_{cfg.get('Runtime') or 'provided.al2023'}"
        if json_logs:
            env["AWS_LAMBDA_LOG_LEVEL"] = logging_cfg.get("ApplicationLogLevel", "INFO")
        env.update(((cfg.get("Environment") or {}).get("Variables")) or {})
        arn = fn.arn if version == "$LATEST" else f"{fn.arn}:{version}"

        def log_line(line: str, stream=stream):
            stream.write(line)
            collector = getattr(sandbox, "collector", None)
            if collector is not None:
                collector.append(line)

        sandbox = Sandbox(artifact, env, arn, float(cfg.get("Timeout", 3)), log_line, f"{fn.name}-{version}")
        sandbox.collector = None
        sandbox.stream = stream
        sandbox.busy = True
        sandbox.start()
        return sandbox

    def _retire(self, fn: Function, version: str) -> None:
        for key in [k for k in fn.pool if k[0] == version]:
            for s in fn.pool.pop(key):
                if not s.busy:
                    s.stop()
                else:
                    s.dead = True  # finishes its invocation, then is dropped

    def shutdown(self) -> None:
        with self.lock:
            for fn in self.functions.values():
                fn.update_token += 1
                for sandboxes in fn.pool.values():
                    for s in sandboxes:
                        s.stop()


def published_label(fn: Function, snap: Snapshot | None) -> str:
    return snap.config["_label"] if snap is not None else "$LATEST"


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
        return True
    except ValueError:
        return False


def _paginate(items: list, query: dict, default_max: int) -> tuple[list, str | None]:
    try:
        start = int(query.get("Marker") or 0)
        size = int(query.get("MaxItems") or default_max)
    except ValueError:
        raise ApiError("InvalidParameterValueException", "Marker and MaxItems must be numbers.")
    size = max(1, min(size, 10000))
    page = items[start : start + size]
    return page, str(start + size) if start + size < len(items) else None
