"""CloudFormation stacks whose resources land where local AWS serves them.

moto's CloudFormation creates AWS::Lambda::Function and AWS::Lambda::Permission in moto's own Lambda
model, which local AWS does not serve, and creates AWS::StepFunctions::StateMachine without its
DefinitionSubstitutions and outside the interpreter. Here those three resource types are created through
local AWS's Lambda and Step Functions instead, so that a stack made from the project's template.yaml
(translated by aws-sam-translator) runs for real. Every other resource type is moto's own, except that a
stack update of an AWS::IAM::Role applies its new policies: moto's keeps the role's old inline and managed
policies and trust policy, so an update that takes a permission away would leave it granted.
"""

from __future__ import annotations

import json
import re

from moto.awslambda.models import LambdaFunction, Permission
from moto.events.models import Rule as EventsRule
from moto.iam.models import Role, iam_backends
from moto.stepfunctions.models import StateMachine
from moto.utilities.utils import get_partition

from .lambda_api import ApiError, LambdaService

# Lambda properties that CreateFunction takes as they are in the template.
_PASS = (
    "FunctionName",
    "Role",
    "Handler",
    "Runtime",
    "MemorySize",
    "Timeout",
    "Environment",
    "Architectures",
    "LoggingConfig",
    "TracingConfig",
    "Description",
    "PackageType",
    "ImageConfig",
    "EphemeralStorage",
    "Layers",
)


class _Resource:
    def is_created(self) -> bool:
        return True


class FunctionResource(_Resource):
    """What the stack holds for a function created through local AWS's Lambda."""

    def __init__(self, service: LambdaService, account: str, region: str, name: str):
        self.service, self.account, self.region, self.name = service, account, region, name

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.name}"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn"

    def get_cfn_attribute(self, attr: str) -> str:
        if attr == "Arn":
            return self.arn
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        raise UnformattedGetAttTemplateException()

    def delete(self, account_id: str, region: str) -> None:
        try:
            self.service.delete_function(account_id, region, {"fn": self.name}, {}, {}, b"")
        except ApiError:
            pass


class PermissionResource(_Resource):
    def __init__(self, sid: str):
        self.sid = sid

    @property
    def physical_resource_id(self) -> str:
        return self.sid

    def delete(self, account_id: str, region: str) -> None:  # the function's deletion removes its policy
        pass


def _function_spec(name: str, props: dict) -> dict:
    spec = {k: props[k] for k in _PASS if k in props}
    spec["FunctionName"] = name
    spec["Code"] = dict(props.get("Code") or {})
    tags = props.get("Tags") or []
    if tags:
        spec["Tags"] = {t["Key"]: t["Value"] for t in tags}
    return spec


def _call(fn, account, region, params, body):
    try:
        return fn(account, region, params, {}, {}, json.dumps(body).encode())
    except ApiError as e:
        raise ValueError(f"{e.code}: {e.message}") from None


def install(service: LambdaService) -> None:
    def create_function(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = cloudformation_json["Properties"]
        name = props.get("FunctionName") or resource_name
        _call(service.create_function, account_id, region_name, {}, _function_spec(name, props))
        if "ReservedConcurrentExecutions" in props:
            _call(
                service.put_concurrency,
                account_id,
                region_name,
                {"fn": name},
                {"ReservedConcurrentExecutions": int(props["ReservedConcurrentExecutions"])},
            )
        return FunctionResource(service, account_id, region_name, name)

    def update_function(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
        props = cloudformation_json["Properties"]
        name = original_resource.name
        spec = _function_spec(name, props)
        code = spec.pop("Code")
        spec.pop("PackageType", None)
        spec.pop("Architectures", None)
        _call(service.update_configuration, account_id, region_name, {"fn": name}, spec)
        service.wait_settled(account_id, region_name, name)
        _call(service.update_code, account_id, region_name, {"fn": name}, code)
        return original_resource

    def delete_function(cls, resource_name, cloudformation_json, account_id, region_name):
        FunctionResource(service, account_id, region_name, resource_name).delete(account_id, region_name)

    def create_permission(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = cloudformation_json["Properties"]
        sid = kwargs.get("LogicalId") or resource_name
        body = {"StatementId": sid, "Action": props["Action"], "Principal": props["Principal"]}
        for key in ("SourceArn", "SourceAccount"):
            if props.get(key):
                body[key] = props[key]
        _call(service.add_permission, account_id, region_name, {"fn": props["FunctionName"]}, body)
        return PermissionResource(sid)

    def definition_of(props: dict) -> str:
        definition = props.get("DefinitionString", "")
        if not definition and props.get("Definition"):
            definition = json.dumps(props["Definition"])
        substitutions = props.get("DefinitionSubstitutions") or {}
        missing = sorted(set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", definition)) - set(substitutions))
        if missing:
            raise ValueError(f"DefinitionSubstitutions lacks {', '.join(missing)}")
        for key, value in substitutions.items():
            definition = definition.replace("${" + key + "}", str(value))
        return definition

    def create_state_machine(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        from moto.stepfunctions.responses import get_backend

        props = cloudformation_json["Properties"]
        name = props.get("StateMachineName", resource_name)
        definition = definition_of(props)
        tags = [{"key": t["Key"], "value": t["Value"]} for t in props.get("Tags", [])]
        backend = get_backend(account_id, region_name)
        return backend.create_state_machine(name, definition, props.get("RoleArn", ""), tags=tags)

    def update_state_machine(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
        from moto.stepfunctions.responses import get_backend

        props = cloudformation_json["Properties"]
        backend = get_backend(account_id, region_name)
        backend.update_state_machine(
            original_resource.arn, definition=definition_of(props), role_arn=props.get("RoleArn")
        )
        return backend.describe_state_machine(original_resource.arn)

    original_role_update = Role.update_from_cloudformation_json

    def update_role(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
        """As CloudFormation updates a role: its policies become the template's, those it no longer lists go."""
        role = original_role_update.__func__(
            cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
        )
        props = cloudformation_json.get("Properties", {})
        iam = iam_backends[account_id][get_partition(region_name)]

        def text(doc) -> str:
            return doc if isinstance(doc, str) else json.dumps(doc)

        if "AssumeRolePolicyDocument" in props:
            iam.update_assume_role_policy(role.name, text(props["AssumeRolePolicyDocument"]))
        wanted = {p["PolicyName"]: p["PolicyDocument"] for p in props.get("Policies") or []}
        for name in list(role.policies):
            if name not in wanted:
                iam.delete_role_policy(role.name, name)
        for name, doc in wanted.items():
            iam.put_role_policy(role.name, name, text(doc))
        managed = set(props.get("ManagedPolicyArns") or [])
        for arn in list(role.managed_policies):
            if arn not in managed:
                iam.detach_role_policy(arn, role.name)
        for arn in managed - set(role.managed_policies):
            iam.attach_role_policy(arn, role.name)
        return role

    def update_rule(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
        """As CloudFormation updates an `AWS::Events::Rule`: a new EventPattern, ScheduleExpression, State,
        Description or Targets changes the rule in place, under its name and ARN (only a new Name replaces it).
        moto deletes it and creates one under a new name, and a Lambda permission that names the rule's ARN
        then lets nothing through: the rule's events are no longer delivered."""
        name = cloudformation_json.get("Properties", {}).get("Name") or original_resource.name
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(name, cloudformation_json, account_id, region_name)

    EventsRule.update_from_cloudformation_json = classmethod(update_rule)
    Role.update_from_cloudformation_json = classmethod(update_role)
    LambdaFunction.create_from_cloudformation_json = classmethod(create_function)
    LambdaFunction.update_from_cloudformation_json = classmethod(update_function)
    LambdaFunction.delete_from_cloudformation_json = classmethod(delete_function)
    Permission.create_from_cloudformation_json = classmethod(create_permission)
    StateMachine.create_from_cloudformation_json = classmethod(create_state_machine)
    StateMachine.update_from_cloudformation_json = classmethod(update_state_machine)
