"""Local ECR: an OCI distribution registry in front of moto's ECR, and ECR's EventBridge events.

`buildah push` / `skopeo copy` to `127.0.0.1:<port>/<repository>:<tag>` store the image's blobs on disk and
its manifest in moto's ECR repository (so `ecr describe-images` shows the true manifest digest), then emit
the "ECR Image Action" PUSH/SUCCESS event to the default EventBridge bus, as ECR does. PutImage through the
API emits the same event, and BatchDeleteImage emits DELETE events. Pushing to a repository that does not
exist fails as ECR does (NAME_UNKNOWN).

Implemented: GET /v2/, HEAD/GET blobs, monolithic and chunked blob uploads (POST, PATCH, PUT ?digest=),
cross-repository mount (answered by a fresh upload), HEAD/GET/PUT manifests by tag or digest.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
import uuid
from pathlib import Path

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ecr.models import ECRBackend, ecr_backends
from moto.events.models import events_backends

MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
}
INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}

_BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})$")
_UPLOADS = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/?$")
_UPLOAD = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<uuid>[0-9a-f-]{36})$")
_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")


class Registry:
    def __init__(self, root: Path, region: str, account_id: str = DEFAULT_ACCOUNT_ID):
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.uploads = root / "uploads"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.uploads.mkdir(parents=True, exist_ok=True)
        self.region = region
        self.account_id = account_id
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Remove every stored blob and upload (at start: the images they belonged to are gone)."""
        for d in (self.blobs, self.uploads):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True, exist_ok=True)

    # -- storage used by the Lambda code loader -------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.blobs / digest.split(":", 1)[1]

    def ecr(self, region: str | None = None, account_id: str | None = None):
        return ecr_backends[account_id or self.account_id][region or self.region]

    def find_image(self, repo: str, ref: str, region: str | None = None, account_id: str | None = None):
        """The moto ECR image for a tag or digest, or None. Raises KeyError if the repository is unknown."""
        backend = self.ecr(region, account_id)
        repository = backend.repositories.get(repo)
        if repository is None:
            raise KeyError(repo)
        for image in repository.images:
            if ref.startswith("sha256:"):
                if image.get_image_digest() == ref:
                    return image
            elif ref in image.image_tags:
                return image
        return None

    # -- HTTP ------------------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict, headers: dict, body: bytes):
        try:
            return self._route(method, path, query, headers, body)
        except RegistryError as e:
            return e.response()

    def _route(self, method, path, query, headers, body):
        if path in ("/v2", "/v2/"):
            return (
                200,
                [("Docker-Distribution-API-Version", "registry/2.0"), ("Content-Type", "application/json")],
                b"{}",
            )
        m = _UPLOADS.match(path)
        if m and method == "POST":
            return self._start_upload(m["name"], query, body)
        m = _UPLOAD.match(path)
        if m:
            if method == "PATCH":
                return self._patch_upload(m["name"], m["uuid"], body)
            if method == "PUT":
                return self._finish_upload(m["name"], m["uuid"], query, body)
            if method == "GET":
                size = self._upload_file(m["uuid"]).stat().st_size
                return 204, self._upload_headers(m["name"], m["uuid"], size), b""
            if method == "DELETE":
                self._upload_file(m["uuid"]).unlink(missing_ok=True)
                return 204, [], b""
        m = _BLOB.match(path)
        if m and method in ("GET", "HEAD"):
            self._repository(m["name"])
            blob = self.blob_path(m["digest"])
            if not blob.exists():
                raise RegistryError(404, "BLOB_UNKNOWN", f"blob unknown to registry: {m['digest']}")
            data = b"" if method == "HEAD" else blob.read_bytes()
            return (
                200,
                [
                    ("Content-Length", str(blob.stat().st_size)),
                    ("Docker-Content-Digest", m["digest"]),
                    ("Content-Type", "application/octet-stream"),
                ],
                data,
            )
        m = _MANIFEST.match(path)
        if m:
            if method in ("GET", "HEAD"):
                return self._get_manifest(m["name"], m["ref"], method == "HEAD")
            if method == "PUT":
                return self._put_manifest(m["name"], m["ref"], headers, body)
        raise RegistryError(404, "UNSUPPORTED", f"local ECR does not implement {method} {path}")

    def _repository(self, name: str):
        repository = self.ecr().repositories.get(name)
        if repository is None:
            raise RegistryError(
                404,
                "NAME_UNKNOWN",
                f"The repository with name '{name}' does not exist in the registry with id '{self.account_id}'",
            )
        return repository

    def _upload_file(self, upload_id: str) -> Path:
        f = self.uploads / upload_id
        if not f.exists():
            raise RegistryError(404, "BLOB_UPLOAD_UNKNOWN", f"blob upload unknown: {upload_id}")
        return f

    def _upload_headers(self, name, upload_id, size):
        return [
            ("Location", f"/v2/{name}/blobs/uploads/{upload_id}"),
            ("Docker-Upload-UUID", upload_id),
            ("Range", f"0-{max(size - 1, 0)}"),
            ("Content-Length", "0"),
        ]

    def _start_upload(self, name, query, body):
        self._repository(name)
        upload_id = str(uuid.uuid4())
        (self.uploads / upload_id).write_bytes(body or b"")
        digest = query.get("digest")
        if digest:  # monolithic upload in one POST
            return self._finish_upload(name, upload_id, query, b"")
        return 202, self._upload_headers(name, upload_id, len(body or b"")), b""

    def _patch_upload(self, name, upload_id, body):
        f = self._upload_file(upload_id)
        with f.open("ab") as out:
            out.write(body)
        return 202, self._upload_headers(name, upload_id, f.stat().st_size), b""

    def _finish_upload(self, name, upload_id, query, body):
        f = self._upload_file(upload_id)
        if body:
            with f.open("ab") as out:
                out.write(body)
        digest = query.get("digest", "")
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            raise RegistryError(400, "DIGEST_INVALID", f"provided digest is not a sha256 digest: {digest!r}")
        actual = "sha256:" + _sha256_file(f)
        if actual != digest:
            f.unlink(missing_ok=True)
            raise RegistryError(
                400, "DIGEST_INVALID", f"provided digest {digest} did not match uploaded content {actual}"
            )
        f.replace(self.blob_path(digest))
        return (
            201,
            [("Location", f"/v2/{name}/blobs/{digest}"), ("Docker-Content-Digest", digest), ("Content-Length", "0")],
            b"",
        )

    def _get_manifest(self, name, ref, head_only):
        self._repository(name)
        image = self.find_image(name, ref)
        if image is None:
            raise RegistryError(404, "MANIFEST_UNKNOWN", f"Requested image not found: {name}:{ref}")
        data = image.image_manifest.encode("utf-8")
        media_type = json.loads(image.image_manifest).get("mediaType") or image.image_manifest_mediatype
        return (
            200,
            [
                ("Content-Type", media_type),
                ("Docker-Content-Digest", image.get_image_digest()),
                ("Content-Length", str(len(data))),
            ],
            b"" if head_only else data,
        )

    def _put_manifest(self, name, ref, headers, body):
        self._repository(name)
        try:
            manifest = json.loads(body)
        except ValueError:
            raise RegistryError(400, "MANIFEST_INVALID", "manifest invalid: not JSON")
        media_type = manifest.get("mediaType") or headers.get("content-type", "").split(";")[0]
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if media_type in MANIFEST_TYPES:
            for blob in [manifest.get("config", {})] + manifest.get("layers", []):
                d = blob.get("digest", "")
                if not d.startswith("sha256:") or not self.blob_path(d).exists():
                    raise RegistryError(400, "MANIFEST_BLOB_UNKNOWN", f"blob unknown to registry: {d}")
        elif media_type in INDEX_TYPES:
            for child in manifest.get("manifests", []):
                if self.find_image(name, child.get("digest", "")) is None:
                    raise RegistryError(400, "MANIFEST_UNKNOWN", f"manifest unknown: {child.get('digest')}")
        else:
            raise RegistryError(415, "MANIFEST_INVALID", f"unsupported manifest media type {media_type!r}")
        tag = None if ref.startswith("sha256:") else ref
        if ref.startswith("sha256:") and ref != digest:
            raise RegistryError(400, "DIGEST_INVALID", f"manifest digest {digest} does not match {ref}")
        with self._lock:
            existing = self.find_image(name, digest)
            if existing is not None and (tag is None or tag in existing.image_tags):
                # The same manifest pushed again under the same tag: nothing changes, no event.
                pass
            else:
                try:
                    self.ecr().put_image(name, body.decode("utf-8"), tag, media_type, digest)
                except Exception as e:  # moto's ECR errors (tag immutability) carry a message
                    code = type(e).__name__
                    if code == "ImageTagAlreadyExistsException":
                        raise RegistryError(400, "TAG_INVALID", getattr(e, "message", str(e)))
                    raise
        return (
            201,
            [
                ("Location", f"/v2/{name}/manifests/{digest}"),
                ("Docker-Content-Digest", digest),
                ("Content-Length", "0"),
            ],
            b"",
        )


class RegistryError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self):
        body = json.dumps({"errors": [{"code": self.code, "message": self.message, "detail": None}]}).encode()
        return (
            self.status,
            [("Content-Type", "application/json"), ("Docker-Distribution-API-Version", "registry/2.0")],
            body,
        )


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def emit_ecr_event(
    account_id: str,
    region: str,
    action: str,
    repo: str,
    digest: str | None,
    tag: str | None,
    media_type: str | None = None,
) -> None:
    """Put an "ECR Image Action" event on the default bus, shaped as ECR's."""
    detail = {"result": "SUCCESS", "repository-name": repo, "action-type": action}
    if digest:
        detail["image-digest"] = digest
    if tag:
        detail["image-tag"] = tag
    if media_type:
        detail["manifest-media-type"] = media_type
        detail["artifact-media-type"] = (
            "application/vnd.oci.image.config.v1+json"
            if "oci" in media_type
            else "application/vnd.docker.container.image.v1+json"
        )
    events_backends[account_id][region].put_events(
        [{"Source": "aws.ecr", "DetailType": "ECR Image Action", "Detail": json.dumps(detail), "Resources": []}]
    )


def install_ecr_hooks() -> None:
    """Make moto's ECR emit events on push (PutImage or a registry push) and on delete."""
    original_put = ECRBackend.put_image
    original_delete = ECRBackend.batch_delete_image
    inside_put = threading.local()

    def put_image(self, repository_name, image_manifest, image_tag, image_manifest_mediatype=None, digest=None):
        inside_put.active = True  # a tag moving to a new image is not a DELETE
        try:
            image = original_put(self, repository_name, image_manifest, image_tag, image_manifest_mediatype, digest)
        finally:
            inside_put.active = False
        media_type = image_manifest_mediatype or json.loads(image_manifest).get("mediaType")
        emit_ecr_event(
            self.account_id, self.region_name, "PUSH", repository_name, image.get_image_digest(), image_tag, media_type
        )
        return image

    def batch_delete_image(self, repository_name, registry_id=None, image_ids=None):
        result = original_delete(self, repository_name, registry_id, image_ids)
        if not getattr(inside_put, "active", False):
            for deleted in result.get("imageIds", []):
                emit_ecr_event(
                    self.account_id,
                    self.region_name,
                    "DELETE",
                    repository_name,
                    getattr(deleted, "image_digest", None),
                    getattr(deleted, "image_tag", None),
                )
        return result

    ECRBackend.put_image = put_image
    ECRBackend.batch_delete_image = batch_delete_image
