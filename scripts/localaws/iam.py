"""IAM, enforced: who is calling, and may that role do this?

A Lambda function runs with credentials of its execution role (Lambda hands the function a role session); a
Step Functions execution calls its Tasks with its state machine's role; an EventBridge target that names a
`RoleArn` is called with that role; `sts:AssumeRole` hands out a role session. Every request signed with such a
session's access key is authorized here against the role's identity policies, inline and attached, before
anything else answers it: actions and resource ARNs with `*` and `?`, `NotAction`/`NotResource`, the condition
operators in `_OPERATORS`, explicit Deny over Allow, and no Allow meaning a deny. A refusal is answered in the
call's protocol with the service's own error code and AWS's wording, naming the action and the resource.

Credentials that are not a role session (the tests' and scripts' `test` key) are the account's administrator:
allowed everything, as an account's admin user is. A session key local AWS did not issue is refused, as AWS
refuses an unknown key.

What is not modelled (see README.md): permission boundaries, SCPs, session policies, resource-based policies
other than Lambda's and ECR's, and operations whose resource this module does not know (for a role session
those are refused with a message saying so, never allowed by default).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")

# SigV4 signing name -> IAM action prefix.
_PREFIX = {"monitoring": "cloudwatch", "email": "ses"}

# How each service says "access denied", by IAM prefix: (code, HTTP status). Lambda answers 403; the JSON and
# CBOR services (CloudWatch among them) 400 with AccessDeniedException, as their "Common Errors" list it; the
# query services AccessDenied with 403.
_DENIED = {
    "lambda": ("AccessDeniedException", 403),
    "sns": ("AuthorizationError", 403),
    "iam": ("AccessDenied", 403),
    "sts": ("AccessDenied", 403),
    "s3": ("AccessDenied", 403),
    "sqs": ("AccessDenied", 403),
}
_DEFAULT_DENIED = ("AccessDeniedException", 400)


class AccessDenied(Exception):
    def __init__(self, service: str, message: str):
        super().__init__(message)
        self.code, self.status = _DENIED.get(service, _DEFAULT_DENIED)
        self.message = message


class InvalidToken(Exception):
    """A session key local AWS never issued."""


@dataclass(frozen=True)
class Session:
    access_key_id: str
    secret_access_key: str
    session_token: str
    role_arn: str
    session_name: str

    @property
    def account(self) -> str:
        return self.role_arn.split(":")[4]

    @property
    def role_name(self) -> str:
        return self.role_arn.rsplit("/", 1)[-1]

    @property
    def principal_arn(self) -> str:
        """The assumed-role ARN AWS names in its messages."""
        return f"arn:aws:sts::{self.account}:assumed-role/{self.role_name}/{self.session_name}"

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }


class Sessions:
    """Role sessions by access key id. A (role, session name) always gets the same key, so a sandbox started
    again, or a role's next execution, signs as the same session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, Session] = {}

    def issue(self, role_arn: str, session_name: str) -> Session:
        digest = hashlib.sha256(f"{role_arn}\n{session_name}".encode()).hexdigest().upper()
        key = "ASIA" + digest[:16]
        session = Session(key, digest[16:56], "local-aws-session-" + digest[:24], role_arn, session_name[:64])
        with self._lock:
            self._by_key[key] = session
        return session

    def of(self, authorization: str | None) -> Session | None:
        """The role session that signed a request, None for the administrator's credentials."""
        m = _CREDENTIAL.search(authorization or "")
        if not m:
            return None
        key = m.group(1)
        with self._lock:
            session = self._by_key.get(key)
        if session is None and key.startswith("ASIA"):
            raise InvalidToken(key)
        return session

    def role_of(self, authorization: str | None) -> str | None:
        """The role name of the session that signed a request; None for the administrator or a key never issued."""
        try:
            session = self.of(authorization)
        except InvalidToken:
            return None
        return session.role_name if session else None


SESSIONS = Sessions()


# ---------------------------------------------------------------------------------------------------------
# Policy evaluation
# ---------------------------------------------------------------------------------------------------------
def _as_list(v) -> list:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _glob(pattern: str, value: str, case: bool) -> bool:
    """IAM's wildcards: `*` any run of characters (`:` and `/` included), `?` one character."""
    if not case:
        pattern, value = pattern.lower(), value.lower()
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, re.DOTALL) is not None


def _arn_like(pattern: str, value: str) -> bool:
    """ArnLike: each of the six colon-separated parts matched on its own (the last may hold colons)."""
    p, v = pattern.split(":", 5), value.split(":", 5)
    if len(p) != 6 or len(v) != 6:
        return _glob(pattern, value, True)
    return all(_glob(a, b, True) for a, b in zip(p, v, strict=True))


def _num(x) -> float:
    return float(x)


_OPERATORS = {
    "StringEquals": lambda want, got: want == got,
    "StringNotEquals": lambda want, got: want != got,
    "StringEqualsIgnoreCase": lambda want, got: want.lower() == got.lower(),
    "StringNotEqualsIgnoreCase": lambda want, got: want.lower() != got.lower(),
    "StringLike": lambda want, got: _glob(want, got, True),
    "StringNotLike": lambda want, got: not _glob(want, got, True),
    "ArnEquals": lambda want, got: want == got,
    "ArnNotEquals": lambda want, got: want != got,
    "ArnLike": _arn_like,
    "ArnNotLike": lambda want, got: not _arn_like(want, got),
    "Bool": lambda want, got: str(want).lower() == str(got).lower(),
    "NumericEquals": lambda want, got: _num(got) == _num(want),
    "NumericNotEquals": lambda want, got: _num(got) != _num(want),
    "NumericLessThan": lambda want, got: _num(got) < _num(want),
    "NumericLessThanEquals": lambda want, got: _num(got) <= _num(want),
    "NumericGreaterThan": lambda want, got: _num(got) > _num(want),
    "NumericGreaterThanEquals": lambda want, got: _num(got) >= _num(want),
}
_NEGATED = {k for k in _OPERATORS if "Not" in k}


class UnsupportedCondition(Exception):
    pass


def _condition_holds(operator: str, key: str, wanted: list, context: dict) -> bool:
    """One operator/key pair. A key the request does not carry makes the condition false (true for a negated
    operator only with ...IfExists), as IAM evaluates it."""
    if operator == "Null":
        present = key.lower() in context
        return all((str(w).lower() == "true") != present for w in wanted)
    qualifier = None
    if ":" in operator:
        qualifier, operator = operator.split(":", 1)
    if_exists = operator.endswith("IfExists")
    if if_exists:
        operator = operator[: -len("IfExists")]
    test = _OPERATORS.get(operator)
    if test is None:
        raise UnsupportedCondition(operator)
    got = context.get(key.lower())
    if got is None:
        return if_exists or (qualifier == "ForAllValues")
    values = _as_list(got)
    wanted = [str(w) for w in wanted]
    if operator in _NEGATED:
        matches = [all(test(w, str(v)) for w in wanted) for v in values]
    else:
        matches = [any(test(w, str(v)) for w in wanted) for v in values]
    return all(matches) if qualifier == "ForAllValues" else any(matches)


def _statement_applies(st: dict, action: str, resource: str, context: dict) -> bool:
    if "Action" in st:
        if not any(_glob(a, action, False) for a in _as_list(st["Action"])):
            return False
    elif "NotAction" in st:
        if any(_glob(a, action, False) for a in _as_list(st["NotAction"])):
            return False
    else:
        return False
    if "Resource" in st:
        if not any(_glob(r, resource, True) for r in _as_list(st["Resource"])):
            return False
    elif "NotResource" in st:
        if any(_glob(r, resource, True) for r in _as_list(st["NotResource"])):
            return False
    else:
        return False
    for operator, pairs in (st.get("Condition") or {}).items():
        for key, wanted in pairs.items():
            if not _condition_holds(operator, key, _as_list(wanted), context):
                return False
    return True


def _document(doc) -> dict:
    if isinstance(doc, str):
        doc = json.loads(unquote(doc) if doc.startswith("%7B") else doc)
    return doc or {}


def role_statements(account: str, role_arn: str) -> list[dict] | None:
    """Every identity-policy statement of the role, inline and attached; None if the role does not exist."""
    from moto.iam.models import iam_backends

    backend = iam_backends[account]["aws"]
    try:
        role = backend.get_role_by_arn(role_arn)
    except Exception:  # moto's NotFoundException: the role is gone
        return None
    statements = []
    for doc in role.policies.values():
        statements += _as_list(_document(doc).get("Statement"))
    for policy in role.managed_policies.values():
        version = next((v for v in policy.versions if v.is_default), None)
        if version is not None:
            statements += _as_list(_document(version.document).get("Statement"))
    return statements


def evaluate(session: Session, action: str, resource: str, context: dict | None = None) -> None:
    """Raise AccessDenied unless the session's role may perform `action` on `resource`."""
    ctx = {k.lower(): v for k, v in (context or {}).items()}
    ctx.setdefault("aws:principalarn", session.role_arn)
    ctx.setdefault("aws:principalaccount", session.account)
    ctx.setdefault("aws:securetransport", "true")
    service = action.split(":", 1)[0]
    statements = role_statements(session.account, session.role_arn)
    who = f"User: {session.principal_arn} is not authorized to perform: {action} on resource: {resource}"
    if statements is None:
        raise AccessDenied(service, f"{who} because the role {session.role_arn} no longer exists")
    allowed = False
    for st in statements:
        try:
            applies = _statement_applies(st, action, resource, ctx)
        except (UnsupportedCondition, ValueError) as e:
            # An operator this evaluator does not know: a Deny is taken to apply, an Allow not to.
            applies = st.get("Effect") == "Deny"
            if applies:
                raise AccessDenied(
                    service, f"{who} with an explicit deny in an identity-based policy (condition {e})"
                ) from None
        if not applies:
            continue
        if st.get("Effect") == "Deny":
            raise AccessDenied(service, f"{who} with an explicit deny in an identity-based policy")
        if st.get("Effect") == "Allow":
            allowed = True
    if not allowed:
        raise AccessDenied(service, f"{who} because no identity-based policy allows the {action} action")


# ---------------------------------------------------------------------------------------------------------
# What a request asks: its IAM action and the resources it acts on
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Request:
    service: str  # signing name
    operation: str | None
    region: str
    account: str
    path: str
    query: dict
    body: bytes
    protocol: str
    lambda_route: tuple | None = None  # (operation, handler, path params) for Lambda's own routes

    def json(self) -> dict:
        try:
            doc = json.loads(self.body or b"{}")
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}

    def form(self) -> dict[str, str]:
        params = {k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}
        params.update(self.query)
        return params


class UnknownResource(Exception):
    pass


def action_of(req: Request) -> str:
    prefix = _PREFIX.get(req.service, req.service)
    op = req.operation
    if req.service == "lambda" and op == "Invoke":
        op = "InvokeFunction"
    if req.service == "lambda" and op == "GetProvisionedConcurrencyConfig" and req.query.get("List") == "ALL":
        op = "ListProvisionedConcurrencyConfigs"  # one path, two operations (`?List=ALL`)
    return f"{prefix}:{op}"


def resources_of(req: Request, lambda_split) -> list[str]:
    r, a = req.region, req.account
    s, op = req.service, req.operation
    if s == "lambda":
        return _lambda_resources(req, lambda_split)
    if s == "ecr":
        if op == "GetAuthorizationToken":
            return ["*"]
        body = req.json()
        name = body.get("repositoryName")
        if not name:
            raise UnknownResource(op)
        return [f"arn:aws:ecr:{r}:{body.get('registryId') or a}:repository/{name}"]
    if s == "dynamodb":
        body = req.json()
        if op in ("ListTables", "DescribeLimits", "DescribeEndpoints"):
            return ["*"]
        if op in ("BatchGetItem", "BatchWriteItem"):
            return [f"arn:aws:dynamodb:{r}:{a}:table/{t}" for t in (body.get("RequestItems") or {})]
        table = body.get("TableName")
        if not table:
            raise UnknownResource(op)
        arn = table if table.startswith("arn:") else f"arn:aws:dynamodb:{r}:{a}:table/{table}"
        if op in ("Query", "Scan") and body.get("IndexName"):
            arn += f"/index/{body['IndexName']}"
        return [arn]
    if s == "states":
        body = req.json()
        for field in ("stateMachineArn", "executionArn", "activityArn", "resourceArn"):
            if body.get(field):
                return [body[field]]
        if op == "CreateStateMachine" and body.get("name"):
            return [f"arn:aws:states:{r}:{a}:stateMachine:{body['name']}"]
        if op in ("ListStateMachines", "ListActivities", "SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat"):
            return ["*"]
        raise UnknownResource(op)
    if s == "codebuild":
        body = req.json()
        if op in ("StartBuild", "BatchGetProjects", "UpdateProject", "DeleteProject", "CreateProject"):
            names = _as_list(body.get("projectName") or body.get("name") or body.get("names"))
            return [n if n.startswith("arn:") else f"arn:aws:codebuild:{r}:{a}:project/{n}" for n in names]
        if op in ("BatchGetBuilds", "StopBuild"):
            ids = _as_list(body.get("ids") or body.get("id"))
            out = []
            for i in ids:
                project = i.split("build/", 1)[-1].split(":", 1)[0] if i.startswith("arn:") else i.split(":", 1)[0]
                out.append(f"arn:aws:codebuild:{r}:{a}:project/{project}")
            return out
        if op in ("ListProjects", "ListBuilds"):
            return ["*"]
        raise UnknownResource(op)
    if s == "logs":
        body = req.json()
        if op == "DescribeLogGroups":
            return [f"arn:aws:logs:{r}:{a}:log-group:*"]
        group = body.get("logGroupName")
        if group:
            return [f"arn:aws:logs:{r}:{a}:log-group:{group}:*"]
        raise UnknownResource(op)
    if s == "monitoring":
        if op == "DescribeAlarms":
            names = _alarm_names(req)
            return [f"arn:aws:cloudwatch:{r}:{a}:alarm:{n}" for n in names] or [f"arn:aws:cloudwatch:{r}:{a}:alarm:*"]
        if op in ("GetMetricData", "GetMetricStatistics", "ListMetrics", "PutMetricData"):
            return ["*"]
        raise UnknownResource(op)
    if s == "sns":
        topic = req.form().get("TopicArn")
        if op == "Publish" and topic:
            return [topic]
        raise UnknownResource(op)
    raise UnknownResource(op)


def _alarm_names(req: Request) -> list[str]:
    if req.protocol == "cbor":
        from . import cbor

        try:
            return list(json.loads(cbor.request_to_json(req.body)).get("AlarmNames") or [])
        except Exception:
            return []
    if req.protocol == "json":
        return list(req.json().get("AlarmNames") or [])
    form = req.form()
    return [v for k, v in sorted(form.items()) if k.startswith("AlarmNames.member.")]


# Lambda operations that act on a version or alias when one is named (AWS's "Function version / alias").
_QUALIFIED = {
    "Invoke",
    "AddPermission",
    "RemovePermission",
    "GetPolicy",
    "PutProvisionedConcurrencyConfig",
    "GetProvisionedConcurrencyConfig",
    "DeleteProvisionedConcurrencyConfig",
}


def _lambda_resources(req: Request, lambda_split) -> list[str]:
    r, a = req.region, req.account
    route = req.lambda_route
    if route is None:
        raise UnknownResource(req.operation)
    op, _, params = route
    if op == "ListFunctions":
        return ["*"]
    if op == "CreateFunction":
        name = req.json().get("FunctionName") or ""
        raw = name
    elif "arn" in params:
        return [params["arn"]]
    else:
        raw = params.get("fn", "")
    m = re.match(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:(\d{12}):", raw) or re.match(r"^(\d{12}):function:", raw)
    account = m.group(1) if m else a
    try:
        name, qual = lambda_split(raw, r)
    except Exception:
        return [f"arn:aws:lambda:{r}:{account}:function:{raw}"]
    arn = f"arn:aws:lambda:{r}:{account}:function:{name}"
    qual = req.query.get("Qualifier") or qual
    if op in _QUALIFIED and qual:
        arn += f":{qual}"
    return [arn]


def authorize(session: Session, req: Request, lambda_split) -> None:
    """Raise AccessDenied unless the role session may make this request."""
    if req.service == "sts" and req.operation == "GetCallerIdentity":
        return  # needs no permission (AWS: "No permissions are required to perform this operation")
    action = action_of(req)
    if req.operation is None:
        raise AccessDenied(
            req.service,
            f"User: {session.principal_arn} is not authorized: local AWS cannot tell which {req.service} "
            "operation this is, so it does not authorize it for a role session",
        )
    try:
        resources = resources_of(req, lambda_split)
    except UnknownResource:
        raise AccessDenied(
            req.service,
            f"User: {session.principal_arn} is not authorized to perform: {action}: local AWS does not know the "
            "resource this operation acts on, so it does not authorize it for a role session "
            "(scripts/localaws/iam.py, resources_of)",
        ) from None
    for resource in resources:
        context = {"aws:RequestedRegion": req.region}
        parts = resource.split(":")
        if len(parts) > 4 and re.fullmatch(r"\d{12}", parts[4]):
            context["aws:ResourceAccount"] = parts[4]
        evaluate(session, action, resource, context)


def pass_role(session: Session, role_arn: str, service_principal: str) -> None:
    """iam:PassRole, checked when a call hands a role to a service (Lambda's CreateFunction and
    UpdateFunctionConfiguration with a Role)."""
    evaluate(session, "iam:PassRole", role_arn, {"iam:PassedToService": service_principal})


# ---------------------------------------------------------------------------------------------------------
# sts:AssumeRole
# ---------------------------------------------------------------------------------------------------------
def _trust_allows(trust: dict, caller_account: str, caller_arn: str | None) -> bool:
    for st in _as_list(trust.get("Statement")):
        if st.get("Effect") != "Allow":
            continue
        if not any(_glob(a, "sts:AssumeRole", False) for a in _as_list(st.get("Action"))):
            continue
        principal = st.get("Principal")
        if principal == "*":
            return True
        aws = _as_list((principal or {}).get("AWS")) if isinstance(principal, dict) else []
        for p in aws:
            if p in ("*", caller_account, f"arn:aws:iam::{caller_account}:root") or (caller_arn and p == caller_arn):
                return True
    return False


def assume_role(caller: Session | None, admin_account: str, params: dict) -> tuple[int, str]:
    """(status, XML body) for sts:AssumeRole, as STS answers it."""
    from moto.iam.models import iam_backends

    role_arn = params.get("RoleArn") or ""
    session_name = params.get("RoleSessionName") or ""
    if not re.fullmatch(r"[\w+=,.@-]{2,64}", session_name):
        return 400, _sts_error("ValidationError", "RoleSessionName must be 2-64 characters of [\\w+=,.@-]")
    m = re.fullmatch(r"arn:aws:iam::(\d{12}):role/(?:[\w+=,.@/-]*/)?([\w+=,.@-]+)", role_arn)
    if not m:
        return 400, _sts_error("ValidationError", f"{role_arn!r} is not a role ARN")
    account = m.group(1)
    caller_account = caller.account if caller else admin_account
    if caller is not None:
        try:
            evaluate(caller, "sts:AssumeRole", role_arn)
        except AccessDenied as e:
            return 403, _sts_error("AccessDenied", e.message)
    try:
        role = iam_backends[account]["aws"].get_role_by_arn(role_arn)
    except Exception:
        return 403, _sts_error("AccessDenied", f"Not authorized to perform sts:AssumeRole on {role_arn}")
    trust = _document(role.assume_role_policy_document)
    if not _trust_allows(trust, caller_account, caller.role_arn if caller else None):
        who = caller.principal_arn if caller else f"arn:aws:iam::{caller_account}:root"
        return 403, _sts_error(
            "AccessDenied",
            f"User: {who} is not authorized to perform: sts:AssumeRole on resource: {role_arn} "
            "(the role's trust policy does not allow this account)",
        )
    session = SESSIONS.issue(role_arn, session_name)
    expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = (
        '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
        f"<Credentials><AccessKeyId>{session.access_key_id}</AccessKeyId>"
        f"<SecretAccessKey>{session.secret_access_key}</SecretAccessKey>"
        f"<SessionToken>{session.session_token}</SessionToken><Expiration>{expires}</Expiration></Credentials>"
        f"<AssumedRoleUser><AssumedRoleId>{role.id}:{session_name}</AssumedRoleId>"
        f"<Arn>{session.principal_arn}</Arn></AssumedRoleUser>"
        "</AssumeRoleResult>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></AssumeRoleResponse>"
    )
    return 200, body


def _sts_error(code: str, message: str) -> str:
    message = message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
        f"<Code>{code}</Code><Message>{message}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )


# ---------------------------------------------------------------------------------------------------------
# Lambda's pull permission on ECR
# ---------------------------------------------------------------------------------------------------------
_PULL = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
_IMAGE_URI = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/([^:@]+)")


def _lets_lambda_pull(policy: dict, function_arn: str) -> bool:
    """Whether the repository policy lets lambda.amazonaws.com pull for this function (conditions evaluated with
    the function as `aws:SourceArn` and its account as `aws:SourceAccount`, as Lambda calls on its behalf)."""
    context = {"aws:sourcearn": function_arn, "aws:sourceaccount": function_arn.split(":")[4]}
    granted = set()
    for st in _as_list(policy.get("Statement")):
        if st.get("Effect") != "Allow":
            continue
        try:
            holds = all(
                _condition_holds(op, key, _as_list(wanted), context)
                for op, pairs in (st.get("Condition") or {}).items()
                for key, wanted in pairs.items()
            )
        except (UnsupportedCondition, ValueError):
            holds = False
        if not holds:
            continue
        principal = st.get("Principal")
        services = _as_list(principal.get("Service")) if isinstance(principal, dict) else []
        if principal != "*" and "lambda.amazonaws.com" not in services:
            continue
        for want in _PULL:
            if any(_glob(a, want, False) for a in _as_list(st.get("Action"))):
                granted.add(want)
    return granted == set(_PULL)


def ensure_lambda_can_pull(session: Session | None, image_uri: str, function_arn: str) -> None:
    """As Lambda does on CreateFunction and UpdateFunctionCode with an image: if the repository's policy does
    not let lambda.amazonaws.com pull, Lambda adds that statement itself, which it can do only when the caller
    may ecr:GetRepositoryPolicy and ecr:SetRepositoryPolicy on the repository; otherwise the call is refused."""
    m = _IMAGE_URI.match(image_uri or "")
    if not m:
        return  # not an ECR URI: CreateFunction's own validation answers
    account, region, name = m.groups()
    from moto.ecr.models import ecr_backends

    repo = ecr_backends[account][region].repositories.get(name)
    if repo is None:
        return  # the image check that follows says the repository does not exist
    policy = _document(repo.policy) if repo.policy else {}
    if _lets_lambda_pull(policy, function_arn):
        return
    repo_arn = f"arn:aws:ecr:{region}:{account}:repository/{name}"
    if session is not None:
        try:
            context = {"aws:RequestedRegion": region, "aws:ResourceAccount": account}
            for action in ("ecr:GetRepositoryPolicy", "ecr:SetRepositoryPolicy"):
                evaluate(session, action, repo_arn, context)
        except AccessDenied as e:
            raise AccessDenied(
                "lambda",
                f"Lambda does not have permission to access the ECR image {image_uri}: the repository policy of "
                f"{repo_arn} does not allow lambda.amazonaws.com to pull, and the caller may not add that "
                f"statement ({e.message}). Grant ecr:GetRepositoryPolicy and ecr:SetRepositoryPolicy on the "
                "repository, or add the statement to its policy.",
            ) from None
    statements = _as_list(policy.get("Statement"))
    statements.append(
        {
            "Sid": "LambdaECRImageRetrievalPolicy",
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": list(_PULL),
        }
    )
    repo.policy = json.dumps({"Version": policy.get("Version", "2012-10-17"), "Statement": statements})


# ---------------------------------------------------------------------------------------------------------
# Step Functions: Tasks call with the execution's role
# ---------------------------------------------------------------------------------------------------------
def install_state_machine_credentials() -> None:
    """moto's interpreter signs every Task's call with a fixed key; here it signs with a session of the role
    the Task runs as (the state machine's role, or the Task's own `Credentials.RoleArn`), as Step Functions does."""
    import importlib
    import pkgutil
    import sys

    import moto.stepfunctions.parser.asl as asl
    from moto.stepfunctions.parser.asl.utils import boto_client as bc

    original = bc.boto_client_for

    def boto_client_for(region: str, service: str, state_credentials=None):
        role_arn = getattr(state_credentials, "role_arn", None)
        client = original(region, service, state_credentials)
        if not role_arn:
            return client
        session = SESSIONS.issue(role_arn, "states-execution")
        import boto3

        return boto3.client(
            service_name=service,
            region_name=region,
            endpoint_url=client.meta.endpoint_url,
            aws_access_key_id=session.access_key_id,
            aws_secret_access_key=session.secret_access_key,
            aws_session_token=session.session_token,
            config=client.meta.config,
        )

    # Every module that imported the function by name holds its own reference: import them all, then swap.
    for info in pkgutil.walk_packages(asl.__path__, asl.__name__ + "."):
        try:
            importlib.import_module(info.name)
        except Exception:  # a module that needs an optional dependency: it cannot call AWS either
            continue
    for module in list(sys.modules.values()):
        name = getattr(module, "__name__", "") or ""
        if name.startswith("moto.stepfunctions") and getattr(module, "boto_client_for", None) is original:
            module.boto_client_for = boto_client_for


def install_policy_version_default() -> None:
    """IAM: "If you do not include a Version element, the value defaults to 2008-10-17" (IAM User Guide, "IAM
    JSON policy elements: Version"). moto refuses such a document in PutRolePolicy ("must be version 2012-10-17
    or greater") though it stores one on create: a stack update of a role with SAM's policy templates (which
    carry no Version) would fail on local AWS and not on AWS. A document without Version is accepted, as AWS
    does; a Version that is there is still checked by moto."""
    from moto.iam import policy_validation

    original = policy_validation.BaseIAMPolicyValidator._validate_version

    def validate_version(self) -> None:
        if "Version" not in self._policy_json:
            return
        original(self)

    policy_validation.BaseIAMPolicyValidator._validate_version = validate_version
