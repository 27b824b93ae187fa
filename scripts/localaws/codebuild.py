"""CodeBuild builds that really run (moto records a build and reports it SUCCEEDED whatever it would do).

StartBuild runs the build's buildspec (the `buildspecOverride`, else the project's inline
`source.buildspec`) on this machine: the commands of the install, pre_build, build and post_build phases,
each with `bash -c`, in a fresh working directory, with the project's environment variables, then the
build's `environmentVariablesOverride`, and AWS_REGION, CODEBUILD_BUILD_ID and CODEBUILD_BUILD_ARN. The commands reach
local AWS (AWS_ENDPOINT_URL and test credentials are set, and the venv's `aws` CLI is on PATH). A command
that exits non-zero fails its phase and the build (`buildStatus` FAILED, the phase's `contexts` say which
command and its exit status), as CodeBuild does; a build over the project's `timeoutInMinutes` is
TIMED_OUT. The output goes to CloudWatch Logs, group `/aws/codebuild/<project>`, stream `<build uuid>`,
named in the build's `logs`. BatchGetBuilds reports the build as it stands.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime

from . import clock

log = logging.getLogger("localaws.codebuild")

PHASES = ("INSTALL", "PRE_BUILD", "BUILD", "POST_BUILD")


def _now() -> str:
    return datetime.now(UTC).isoformat()


def install(endpoint_url: str) -> None:
    import yaml
    from moto.codebuild import responses
    from moto.codebuild.models import CodeBuildBackend
    from moto.codebuild.responses import CodeBuildResponse
    from moto.logs.models import logs_backends

    original_source_check = responses._validate_required_params_source

    def source_check(source):
        # A NO_SOURCE project has only an inline buildspec, no location (moto asks for one anyway).
        if source.get("type") == "NO_SOURCE":
            if not source.get("buildspec"):
                raise responses.InvalidInputException("A NO_SOURCE project needs an inline buildspec")
            return
        original_source_check(source)

    responses._validate_required_params_source = source_check

    original_start = CodeBuildResponse.start_build
    running: dict[str, dict] = {}  # build id -> the build's metadata, as this module keeps it

    def start_build(self):
        result = original_start(self)
        build = result.result["build"] if hasattr(result, "result") else None
        if build is None:
            return result
        project = self.codebuild_backend.codebuild_projects[self._get_param("projectName")].project_metadata
        spec_text = self._get_param("buildspecOverride") or (project.get("source") or {}).get("buildspec") or ""
        env = {v["name"]: v["value"] for v in (project.get("environment") or {}).get("environmentVariables") or []}
        env.update({v["name"]: v["value"] for v in self._get_param("environmentVariablesOverride") or []})
        timeout = (self._get_param("timeoutInMinutesOverride") or project.get("timeoutInMinutes") or 60) * 60
        build["phases"] = [p for p in build["phases"] if p["phaseType"] == "SUBMITTED"]
        build["currentPhase"] = "PROVISIONING"
        stream = build["id"].split(":", 1)[1]
        group = f"/aws/codebuild/{project['name']}"
        build["logs"] = {
            "groupName": group,
            "streamName": stream,
            "deepLink": f"{endpoint_url}/_local/codebuild/{build['id']}",
            "cloudWatchLogsArn": f"arn:aws:logs:{self.region}:{self.current_account}:log-group:{group}:log-stream:{stream}",
        }
        running[build["id"]] = build
        logs = logs_backends[self.current_account][self.region]
        threading.Thread(
            target=_run, args=(build, spec_text, env, timeout, logs, group, stream, endpoint_url), daemon=True
        ).start()
        return result

    original_batch = CodeBuildBackend.batch_get_builds

    def batch_get_builds(self, ids):
        ours = [running[i] for i in ids if i in running]
        others = [i for i in ids if i not in running]
        return ours + (original_batch(self, others) if others else [])

    CodeBuildResponse.start_build = start_build
    CodeBuildBackend.batch_get_builds = batch_get_builds
    assert yaml.safe_load("a: 1") == {"a": 1}  # PyYAML present: a missing one fails at start, not mid-build


def _run(build: dict, spec_text: str, env: dict, timeout: float, logs, group: str, stream: str, endpoint: str):
    import yaml

    try:
        logs.ensure_log_group(group)
    except Exception:  # already there
        pass
    logs.create_log_stream(group, stream)

    def write(line: str) -> None:
        logs.put_log_events(group, stream, [{"timestamp": int(time.time() * 1000), "message": line}])

    started = time.monotonic()
    try:
        spec = yaml.safe_load(spec_text) or {}
        phases = spec.get("phases") or {}
    except yaml.YAMLError as e:
        _end(build, "FAILED", "DOWNLOAD_SOURCE", f"YAML_FILE_ERROR: {e}")
        write(f"[Container] buildspec is not valid YAML: {e}")
        return
    variables = dict(os.environ)
    variables.update((spec.get("env") or {}).get("variables") or {})
    variables.update(env)
    variables.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": variables.get("AWS_ACCESS_KEY_ID", "test"),
            "AWS_SECRET_ACCESS_KEY": variables.get("AWS_SECRET_ACCESS_KEY", "test"),
            "AWS_REGION": build["arn"].split(":")[3],
            "AWS_DEFAULT_REGION": build["arn"].split(":")[3],
            "CODEBUILD_BUILD_ID": build["id"],
            "CODEBUILD_BUILD_ARN": build["arn"],
            "PATH": os.path.dirname(sys.executable) + os.pathsep + variables.get("PATH", ""),
        }
    )
    with tempfile.TemporaryDirectory(prefix="codebuild-") as workdir:
        for phase in PHASES:
            commands = (phases.get(phase.lower()) or {}).get("commands") or []
            record = {"phaseType": phase, "startTime": _now()}
            build["phases"].append(record)
            build["currentPhase"] = phase
            for command in commands:
                remaining = clock.real(timeout) - (time.monotonic() - started)
                write(f"[Container] Running command {command}")
                try:
                    done = subprocess.run(
                        ["bash", "-c", command],
                        cwd=workdir,
                        env=variables,
                        capture_output=True,
                        text=True,
                        timeout=max(1.0, remaining),
                    )
                except subprocess.TimeoutExpired:
                    context = {"statusCode": "BUILD_TIMED_OUT", "message": f"Build timed out after {int(timeout)} s"}
                    record.update(phaseStatus="TIMED_OUT", endTime=_now(), contexts=[context])
                    _end(build, "TIMED_OUT", phase, f"Build timed out after {int(timeout)} seconds")
                    write("[Container] Build timed out")
                    return
                for line in (done.stdout + done.stderr).splitlines():
                    write(line)
                if done.returncode != 0:
                    reason = (
                        f"COMMAND_EXECUTION_ERROR: Error while executing command: {command}. "
                        f"Reason: exit status {done.returncode}"
                    )
                    context = {"statusCode": "COMMAND_EXECUTION_ERROR", "message": reason}
                    record.update(phaseStatus="FAILED", endTime=_now(), contexts=[context])
                    write(f"[Container] Phase complete: {phase} State: FAILED")
                    _end(build, "FAILED", phase, reason)
                    return
            record.update(phaseStatus="SUCCEEDED", endTime=_now())
            write(f"[Container] Phase complete: {phase} State: SUCCEEDED")
    _end(build, "SUCCEEDED", "COMPLETED", None)


def _end(build: dict, status: str, phase: str, reason: str | None) -> None:
    build["buildStatus"] = status
    build["currentPhase"] = "COMPLETED"
    build["endTime"] = _now()
    build["buildComplete"] = True
    log.info("build %s: %s%s", build["id"], status, f" ({reason})" if reason else "")
