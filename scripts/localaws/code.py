"""Where a Lambda function's code comes from, and how it is laid out to run.

Zip package: the `bootstrap` executable at the root of the zip, as on the provided.al2023 runtime; the zip
is unpacked once per CodeSha256 into the cache and runs with that folder as LAMBDA_TASK_ROOT.

Image: the image's manifest and layers come from local ECR; the layers are applied in order (whiteouts
honoured) into a root filesystem, once per image digest. The process is the image's own ENTRYPOINT + CMD
(or the function's ImageConfig overrides), with the image's Env and WorkingDir. When local AWS runs as root
it chroots into that filesystem, as Lambda runs an image: a `FROM scratch` image needs a static binary, here
as there. Without root, the entrypoint runs from the unpacked folder and the difference is logged.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import tarfile
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .registry import INDEX_TYPES, MANIFEST_TYPES, Registry

IMAGE_URI = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/"
    r"(?P<repo>[a-z0-9][a-z0-9._/-]*?)(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})|@(?P<digest>sha256:[0-9a-f]{64}))$"
)


class CodeError(Exception):
    """The code cannot be used. `reason_code` is Lambda's LastUpdateStatusReasonCode / StateReasonCode."""

    def __init__(self, reason_code: str, message: str, api_error: str = "InvalidParameterValueException"):
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message
        self.api_error = api_error


@dataclass
class ResolvedImage:
    account: str
    region: str
    repo: str
    digest: str
    image_uri: str  # as the user gave it

    @property
    def resolved_uri(self) -> str:
        return f"{self.account}.dkr.ecr.{self.region}.amazonaws.com/{self.repo}@{self.digest}"


@dataclass
class Artifact:
    """What a sandbox executes."""

    root: Path
    argv: list[str]
    workdir: str
    env: dict[str, str] = field(default_factory=dict)
    chroot: bool = False

    def host_executable(self) -> Path:
        exe = self.argv[0]
        return self.root / exe.lstrip("/") if self.chroot or exe.startswith("/") else self.root / exe


class CodeStore:
    def __init__(self, cache: Path, registry: Registry):
        self.cache = cache
        self.registry = registry
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        (cache / "zip").mkdir(parents=True, exist_ok=True)
        (cache / "rootfs").mkdir(parents=True, exist_ok=True)

    def clear(self) -> None:
        """Remove every unpacked package and image (at start: the functions they belonged to are gone)."""
        for d in ("zip", "rootfs"):
            shutil.rmtree(self.cache / d, ignore_errors=True)
            (self.cache / d).mkdir(parents=True, exist_ok=True)

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    # -- resolution at CreateFunction / UpdateFunctionCode ---------------------------------------
    def resolve_image(self, image_uri: str, account_id: str, region: str) -> ResolvedImage:
        m = IMAGE_URI.match(image_uri or "")
        if not m:
            raise CodeError(
                "InvalidImage",
                f"Source image {image_uri} is not valid. Provide a valid source image: "
                "<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag> or @sha256:<digest>.",
            )
        if m["account"] != account_id or m["region"] != region:
            raise CodeError(
                "ImageAccessDenied",
                f"Source image {image_uri} is in another account or region; local AWS serves "
                f"account {account_id} in {region} only.",
            )
        ref = m["digest"] or m["tag"] or "latest"
        try:
            image = self.registry.find_image(m["repo"], ref, region, account_id)
        except KeyError:
            image = None
        if image is None:
            raise CodeError("ImageDeleted", f"Source image {image_uri} does not exist. Provide a valid source image.")
        manifest = json.loads(image.image_manifest)
        media_type = manifest.get("mediaType") or image.image_manifest_mediatype
        if media_type in INDEX_TYPES:
            raise CodeError(
                "InvalidImage",
                f"The image manifest, config or layer media type for the source image {image_uri} "
                "is not supported: it is an image index (multi-architecture). Lambda runs "
                "single-architecture images: push a platform-specific image and use its digest.",
            )
        if media_type not in MANIFEST_TYPES:
            raise CodeError(
                "InvalidImage", f"The image manifest media type {media_type} of {image_uri} is not supported."
            )
        return ResolvedImage(m["account"], m["region"], m["repo"], image.get_image_digest(), image_uri)

    @staticmethod
    def zip_sha256(zip_bytes: bytes) -> str:
        import base64

        return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()

    # -- materialisation when a sandbox starts ---------------------------------------------------
    def zip_artifact(self, zip_bytes: bytes) -> Artifact:
        key = hashlib.sha256(zip_bytes).hexdigest()
        root = self.cache / "zip" / key
        with self._lock(key):
            if not root.exists():
                tmp = root.with_suffix(".tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                try:
                    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
                        for info in zf.infolist():
                            target = (tmp / info.filename).resolve()
                            if not str(target).startswith(str(tmp.resolve())):
                                raise CodeError(
                                    "InvalidZipFileException", f"zip entry {info.filename} escapes the package"
                                )
                            zf.extract(info, tmp)
                            mode = (info.external_attr >> 16) & 0o777
                            if mode and not info.is_dir():
                                os.chmod(target, mode)
                except zipfile.BadZipFile as e:
                    raise CodeError("InvalidZipFileException", f"Could not unzip uploaded file: {e}")
                tmp.rename(root)
        bootstrap = root / "bootstrap"
        if not bootstrap.is_file():
            raise CodeError(
                "InvalidZipFileException",
                "The zip has no `bootstrap` at its root; a provided.al2023 function needs an "
                "executable named bootstrap.",
                api_error="InvalidParameterValueException",
            )
        if not os.access(bootstrap, os.X_OK):
            os.chmod(bootstrap, bootstrap.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return Artifact(root=root, argv=[str(bootstrap)], workdir=str(root), chroot=False)

    def image_artifact(self, resolved: ResolvedImage, image_config: dict) -> Artifact:
        image = self.registry.find_image(resolved.repo, resolved.digest, resolved.region, resolved.account)
        if image is None:
            raise CodeError("ImageDeleted", f"The image {resolved.resolved_uri} has been deleted from its repository.")
        manifest = json.loads(image.image_manifest)
        config_blob = self.registry.blob_path(manifest["config"]["digest"])
        if not config_blob.exists():
            raise CodeError("InvalidImage", f"The config blob of {resolved.resolved_uri} is missing.")
        config = json.loads(config_blob.read_bytes()).get("config") or {}
        # Keyed by the layers, not the image: images that differ only in their config (ENV, CMD) share
        # one unpacked tree, as they share their layer blobs in the registry.
        layers = [layer["digest"] for layer in manifest.get("layers", [])]
        key = hashlib.sha256("\n".join(layers).encode()).hexdigest()
        root = self.cache / "rootfs" / key
        with self._lock(key):
            if not root.exists():
                tmp = root.with_suffix(".tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                for layer in manifest.get("layers", []):
                    self._apply_layer(tmp, layer, resolved)
                for d in ("tmp", "var/task", "var/runtime", "opt"):
                    (tmp / d).mkdir(parents=True, exist_ok=True)
                os.chmod(tmp / "tmp", 0o1777)
                tmp.rename(root)
        entrypoint = image_config.get("EntryPoint") or config.get("Entrypoint") or []
        command = image_config.get("Command") or config.get("Cmd") or []
        argv = list(entrypoint) + list(command)
        if not argv:
            raise CodeError("InvalidImage", f"The image {resolved.resolved_uri} has no ENTRYPOINT or CMD to run.")
        workdir = image_config.get("WorkingDirectory") or config.get("WorkingDir") or "/"
        env = {}
        for item in config.get("Env") or []:
            k, _, v = item.partition("=")
            env[k] = v
        chroot = os.geteuid() == 0
        exe = argv[0]
        if not exe.startswith("/"):
            found = None
            for d in env.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(":") + [workdir]:
                if (root / d.lstrip("/") / exe).exists():
                    found = f"{d.rstrip('/')}/{exe}"
                    break
            if found is None:
                raise CodeError(
                    "InvalidEntrypoint",
                    f"Runtime.InvalidEntrypoint: entrypoint {exe!r} is not in the image {resolved.resolved_uri}.",
                )
            argv[0] = found
        host_exe = root / argv[0].lstrip("/")
        if not host_exe.is_file() or not os.access(host_exe, os.X_OK):
            raise CodeError(
                "InvalidEntrypoint",
                f"Runtime.InvalidEntrypoint: {argv[0]} is not an executable file in the image {resolved.resolved_uri}.",
            )
        if not chroot:
            argv[0] = str(host_exe)
            workdir = str(root / workdir.lstrip("/"))
        return Artifact(root=root, argv=argv, workdir=workdir, env=env, chroot=chroot)

    def _apply_layer(self, root: Path, layer: dict, resolved: ResolvedImage) -> None:
        blob = self.registry.blob_path(layer["digest"])
        if not blob.exists():
            raise CodeError("InvalidImage", f"Layer {layer['digest']} of {resolved.resolved_uri} is missing.")
        if "zstd" in layer.get("mediaType", ""):
            raise CodeError("InvalidImage", f"Layer media type {layer['mediaType']} is not supported.")
        try:
            with tarfile.open(blob, mode="r:*") as tar:
                members = []
                for member in tar.getmembers():
                    name = member.name.lstrip("./")
                    base = os.path.basename(name)
                    parent = os.path.dirname(name)
                    if base == ".wh..wh..opq":
                        d = root / parent
                        if d.is_dir():
                            for child in d.iterdir():
                                _remove(child)
                        continue
                    if base.startswith(".wh."):
                        _remove(root / parent / base[4:])
                        continue
                    existing = root / name
                    if existing.is_symlink() or (existing.exists() and not existing.is_dir()):
                        existing.unlink()
                    members.append(member)
                tar.extractall(root, members=members, filter="tar")
        except (tarfile.TarError, OSError) as e:
            raise CodeError(
                "InvalidImage", f"Layer {layer['digest']} of {resolved.resolved_uri} cannot be unpacked: {e}"
            )


def _remove(p: Path) -> None:
    if p.is_symlink() or p.is_file():
        p.unlink()
    elif p.is_dir():
        shutil.rmtree(p)
