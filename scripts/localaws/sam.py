"""Translate the project's SAM template to CloudFormation offline, for a stack on local AWS.

    python -m localaws.sam --template template.yaml --bucket BUCKET [--param K=V ...] > stack.json

What `sam build && sam package` would change is changed here: each function's CodeUri
(`target/lambda/<binary>/`) becomes `s3://BUCKET/<key>` (`--code-key binary=key`, default `<binary>.zip`), and the state machine's DefinitionUri
becomes its Definition. The rest is aws-sam-translator's own transform, the same that
CloudFormation runs for `Transform: AWS::Serverless-2016-10-31`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


class _NoManagedPolicies:
    """The template names no AWS managed policy by name; nothing to look up."""

    def load(self) -> dict:
        return {}


def translate(template_path: Path, bucket: str, params: dict[str, str], keys: dict[str, str] | None = None) -> dict:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    root = template_path.parent
    template = yaml_parse(template_path.read_text())
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            code_uri = str(props.get("CodeUri", ""))
            binary = Path(code_uri.rstrip("/")).name
            if not binary:
                raise SystemExit(f"{name}: CodeUri {code_uri!r} does not name a binary folder")
            props["CodeUri"] = f"s3://{bucket}/{(keys or {}).get(binary, binary + '.zip')}"
        if resource["Type"] == "AWS::Serverless::StateMachine" and "DefinitionUri" in props:
            props["Definition"] = json.loads((root / props.pop("DefinitionUri")).read_text())
    return transform(template, params, _NoManagedPolicies())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--template", type=Path, required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--param", action="append", default=[], help="a template parameter, K=V")
    parser.add_argument("--code-key", action="append", default=[], help="BINARY=S3KEY (default BINARY.zip)")
    args = parser.parse_args()
    params = dict(p.split("=", 1) for p in args.param)
    keys = dict(k.split("=", 1) for k in args.code_key)
    json.dump(translate(args.template, args.bucket, params, keys), sys.stdout, indent=1)


if __name__ == "__main__":
    main()
