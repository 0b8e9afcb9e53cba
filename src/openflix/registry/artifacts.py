"""Artifact stores: where model files (byte blobs up to a few hundred MB) live.

Two stores share one contract, :class:`ArtifactStore`:

* :class:`LocalArtifacts` keeps files under a directory and publishes each one
  atomically (temp file in the same directory, then :func:`os.replace`), so a
  reader never sees a half-written model even if the writer is SIGKILLed.
* :class:`S3Artifacts` keeps objects in an S3 bucket (AWS, MinIO, moto...).  The
  endpoint, region and credentials come from boto3's usual sources
  (``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``...).  An
  S3 object only becomes visible once its upload completes.

:func:`open_artifacts` turns the ``OPENFLIX_ARTIFACTS`` setting (a directory or
``s3://bucket/prefix``) into a store.

Keys are relative, ``/``-separated names such as ``"als/v3/model.npz"``; every
store returns an artifact URI (``file:///abs/path`` or ``s3://bucket/prefix/key``)
that its ``get``, ``exists`` and ``delete`` accept back.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import boto3.session
from boto3.exceptions import Boto3Error, RetriesExceededError, S3UploadFailedError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from openflix.errors import ConfigError, DataError, ModelFileError

__all__ = [
    "DEFAULT_ARTIFACTS",
    "ENV_VAR",
    "ArtifactStore",
    "LocalArtifacts",
    "S3Artifacts",
    "open_artifacts",
]

ENV_VAR = "OPENFLIX_ARTIFACTS"
"""The setting that names the artifact store."""

DEFAULT_ARTIFACTS = "artifacts"
"""The artifact store used when ``OPENFLIX_ARTIFACTS`` is unset: a local directory."""

_CHUNK = 1024 * 1024
_BOTO_ERRORS = (BotoCoreError, ClientError, Boto3Error)
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_DENIED_CODES = frozenset(
    {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}
)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SCHEME_NO_SLASHES = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):(?!//)")  # 2+ letters: not a drive letter
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$")


def _key_problem(key: object) -> str | None:
    """Why ``key`` is not a valid artifact key, or ``None`` when it is."""
    if not isinstance(key, str) or not key:
        return "must be a non-empty string"
    if key.startswith("/"):
        return "must be relative (no leading '/')"
    if "\\" in key or "\x00" in key:
        return "must use '/' as separator and contain no NUL"
    if any(part in ("", ".", "..") for part in key.split("/")):
        return "must not contain empty, '.' or '..' segments"
    return None


def _valid_key(key: str) -> str:
    problem = _key_problem(key)
    if problem is not None:
        raise DataError(f"artifact key {key!r} {problem}; use a relative name such as 'als/v3/model.npz'")
    return key


def _atomic_copy(source: Path, dest: Path) -> None:
    """Copy ``source`` to ``dest`` so that ``dest`` is either absent/old or complete.

    The bytes go to a hidden temp file in ``dest``'s directory, are flushed to disk,
    and the temp file is renamed over ``dest`` (atomic on POSIX and Windows).  On any
    failure the temp file is removed; after a SIGKILL at most a hidden
    ``.<name>.*.part`` file is left behind, never a partial ``dest``.
    """
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o644)  # mkstemp makes 0600; artifacts are read by other workers
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, _CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(dest.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort; a no-op where unsupported)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ArtifactStore(ABC):
    """Where model files are kept; every method takes or returns artifact URIs.

    Implementations publish atomically: an artifact is either absent, or present
    with all its bytes.  Failures raise :class:`~openflix.errors.ModelFileError`
    (and :class:`~openflix.errors.DataError` for a malformed key).
    """

    @abstractmethod
    def uri(self, key: str) -> str:
        """The URI the artifact stored under ``key`` has (whether or not it exists).

        Parameters
        ----------
        key:
            Relative ``/``-separated name, e.g. ``"als/v3/model.npz"``.

        Returns
        -------
        str
            ``file:///...`` or ``s3://bucket/prefix/key``.
        """

    @abstractmethod
    def put(self, key: str, source: Path) -> str:
        """Store the file at ``source`` under ``key``, replacing any previous artifact.

        Parameters
        ----------
        key:
            Relative ``/``-separated name, e.g. ``"als/v3/model.npz"``.
        source:
            The local file to upload.

        Returns
        -------
        str
            The artifact's URI, to hand back to :meth:`get`, :meth:`exists`, :meth:`delete`.

        Raises
        ------
        DataError
            ``key`` is malformed.
        ModelFileError
            ``source`` is not a file, or the store cannot be written.
        """

    @abstractmethod
    def get(self, uri: str, dest: Path) -> Path:
        """Download the artifact at ``uri`` to the file ``dest`` (parents are created).

        Returns
        -------
        Path
            ``dest``.

        Raises
        ------
        ModelFileError
            The artifact does not exist, ``uri`` belongs to another store, or
            the store or ``dest`` cannot be reached.
        """

    @abstractmethod
    def exists(self, uri: str) -> bool:
        """Whether an artifact is stored at ``uri``.

        Raises
        ------
        ModelFileError
            ``uri`` belongs to another store, or the store cannot be reached.
        """

    @abstractmethod
    def delete(self, uri: str) -> None:
        """Remove the artifact at ``uri``; removing a missing artifact is not an error.

        Raises
        ------
        ModelFileError
            ``uri`` belongs to another store, or the store cannot be written.
        """

    @abstractmethod
    def describe(self) -> str:
        """A one-line, human-readable description of where artifacts go."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.describe()}>"


class LocalArtifacts(ArtifactStore):
    """Artifacts as files under a local directory (created on first :meth:`put`).

    Parameters
    ----------
    root:
        The directory; relative paths are resolved against the current directory
        once, at construction.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(
                f"artifact directory {self.root} is a file, not a directory; "
                f"point {ENV_VAR} at a directory or at s3://bucket/prefix"
            )

    def describe(self) -> str:
        return f"local directory {self.root}"

    def uri(self, key: str) -> str:
        return self._path(_valid_key(key)).as_uri()

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def _path_of(self, uri: str) -> Path:
        """The file a ``file://`` URI of this store names."""
        parts = urlsplit(uri)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            raise ModelFileError(
                f"artifact URI {uri!r} is not a file:// URI of {self.describe()}; "
                "open the store that produced it"
            )
        path = Path(os.path.normpath(url2pathname(parts.path)))
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            raise ModelFileError(
                f"artifact URI {uri!r} is outside {self.describe()}; open the store that produced it"
            ) from None
        if not rel.parts:
            raise ModelFileError(f"artifact URI {uri!r} names the store's root, not an artifact")
        return path

    def put(self, key: str, source: Path) -> str:
        dest = self._path(_valid_key(key))
        source = Path(source)
        if not source.is_file():
            raise ModelFileError(
                f"cannot store {source} as artifact {key!r}: expected a file, found "
                f"{'a directory' if source.is_dir() else 'nothing'}; check the path"
            )
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            _atomic_copy(source, dest)
        except OSError as exc:
            raise ModelFileError(
                f"cannot write artifact {dest}: {exc.strerror or exc}; "
                f"check free space and permissions under {self.root}"
            ) from exc
        return dest.as_uri()

    def get(self, uri: str, dest: Path) -> Path:
        path = self._path_of(uri)
        if not path.is_file():
            raise ModelFileError(
                f"artifact {uri} does not exist in {self.describe()}; "
                "check the URI or publish the model again"
            )
        dest = Path(dest)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            _atomic_copy(path, dest)
        except FileNotFoundError as exc:
            if exc.filename is not None and Path(exc.filename) == path:  # deleted meanwhile
                raise ModelFileError(f"artifact {uri} does not exist in {self.describe()}") from exc
            raise ModelFileError(f"cannot copy artifact {uri} to {dest}: {exc.strerror or exc}") from exc
        except OSError as exc:
            raise ModelFileError(f"cannot copy artifact {uri} to {dest}: {exc.strerror or exc}") from exc
        return dest

    def exists(self, uri: str) -> bool:
        return self._path_of(uri).is_file()

    def delete(self, uri: str) -> None:
        path = self._path_of(uri)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise ModelFileError(f"cannot delete artifact {uri}: {exc.strerror or exc}") from exc


class S3Artifacts(ArtifactStore):
    """Artifacts as objects in an S3 bucket, under an optional key prefix.

    Nothing is created implicitly; call :meth:`ensure_bucket` to create the bucket.

    Parameters
    ----------
    bucket:
        The bucket's name.
    prefix:
        Key prefix, e.g. ``"models"``; leading, trailing and doubled ``/`` are dropped.
    client:
        A boto3 S3 client.  By default a new one from a fresh boto3 session, which
        reads ``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION`` and the credentials from
        the environment at that moment.
    """

    def __init__(self, bucket: str, prefix: str = "", client: Any | None = None) -> None:
        if not _BUCKET.match(bucket or ""):
            raise ConfigError(
                f"S3 bucket name {bucket!r} is not valid; expected 3-255 letters, digits, '.', '-' or '_'"
            )
        segments = [s for s in (prefix or "").split("/") if s]
        if any(s in (".", "..") for s in segments):
            raise ConfigError(f"S3 key prefix {prefix!r} must not contain '.' or '..' segments")
        self.bucket = bucket
        self.prefix = "/".join(segments)
        if client is None:
            try:
                client = boto3.session.Session().client("s3")
            except (BotoCoreError, ValueError) as exc:
                raise ConfigError(
                    f"cannot create an S3 client: {exc}; check AWS_ENDPOINT_URL and AWS_DEFAULT_REGION"
                ) from exc
        self.client: Any = client

    @property
    def base_uri(self) -> str:
        """``s3://bucket`` or ``s3://bucket/prefix``."""
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def endpoint(self) -> str:
        """The URL the client talks to."""
        return str(getattr(getattr(self.client, "meta", None), "endpoint_url", "an unknown endpoint"))

    def describe(self) -> str:
        return f"S3 {self.base_uri} at {self.endpoint}"

    def _object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._object_key(_valid_key(key))}"

    def _key_of(self, uri: str) -> str:
        """The object key an ``s3://`` URI of this store names."""
        head = self.base_uri + "/"
        key = uri[len(head) :] if isinstance(uri, str) and uri.startswith(head) else None
        if key is None or _key_problem(key) is not None:
            raise ModelFileError(
                f"artifact URI {uri!r} is not under {self.base_uri}/; open the store that produced it"
            )
        return self._object_key(key)

    def _error(self, exc: BaseException, action: str, what: str) -> ModelFileError:
        """Translate a boto3/botocore error into a :class:`ModelFileError` that says what to do."""
        inner: BaseException = exc
        if isinstance(exc, RetriesExceededError) and exc.last_exception is not None:
            inner = exc.last_exception
        elif isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, ClientError):
            inner = exc.__context__
        where = self.endpoint
        if isinstance(inner, ClientError):
            error = inner.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in _MISSING_CODES:
                return ModelFileError(
                    f"artifact {what} does not exist at {where}; check the URI or publish the model again"
                )
            if code == "NoSuchBucket":
                return ModelFileError(
                    f"S3 bucket '{self.bucket}' does not exist at {where} (needed to {action} {what}); "
                    f"create it (S3Artifacts.ensure_bucket()) or point {ENV_VAR} at an existing bucket"
                )
            if code in _DENIED_CODES:
                return ModelFileError(
                    f"S3 at {where} refused to {action} {what} ({code}); "
                    "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's policy"
                )
            message = error.get("Message") or inner
            return ModelFileError(f"cannot {action} {what} at {where}: {code or 'error'}: {message}")
        if isinstance(inner, BotoConnectionError | HTTPClientError):
            return ModelFileError(
                f"cannot reach S3 at {where} to {action} {what}: {inner}; "
                "set AWS_ENDPOINT_URL to a reachable endpoint or check the network"
            )
        if isinstance(inner, NoCredentialsError | PartialCredentialsError):
            return ModelFileError(
                f"no usable AWS credentials to {action} {what}: {inner}; "
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
            )
        return ModelFileError(f"cannot {action} {what} at {where}: {inner}")

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist yet (in the client's region).

        Raises
        ------
        ModelFileError
            The bucket exists but is not ours, or S3 cannot be reached.
        """
        what = f"bucket '{self.bucket}'"
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) not in _MISSING_CODES | {"NoSuchBucket"}:
                raise self._error(exc, "check", what) from exc
        except _BOTO_ERRORS as exc:
            raise self._error(exc, "check", what) from exc
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        region = getattr(self.client.meta, "region_name", None)
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**kwargs)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) != "BucketAlreadyOwnedByYou":
                raise self._error(exc, "create", what) from exc
        except _BOTO_ERRORS as exc:
            raise self._error(exc, "create", what) from exc

    def put(self, key: str, source: Path) -> str:
        object_key = self._object_key(_valid_key(key))
        uri = f"s3://{self.bucket}/{object_key}"
        source = Path(source)
        if not source.is_file():
            raise ModelFileError(
                f"cannot store {source} as artifact {uri}: expected a file, found "
                f"{'a directory' if source.is_dir() else 'nothing'}; check the path"
            )
        try:
            self.client.upload_file(str(source), self.bucket, object_key)
        except _BOTO_ERRORS as exc:
            raise self._error(exc, "upload", uri) from exc
        return uri

    def get(self, uri: str, dest: Path) -> Path:
        object_key = self._key_of(uri)
        dest = Path(dest)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.client.download_file(self.bucket, object_key, str(dest))
        except _BOTO_ERRORS as exc:  # before OSError: some botocore errors are OSErrors too
            raise self._error(exc, "download", uri) from exc
        except OSError as exc:
            raise ModelFileError(f"cannot write {dest} (downloading {uri}): {exc.strerror or exc}") from exc
        return dest

    def exists(self, uri: str) -> bool:
        object_key = self._key_of(uri)
        try:
            self.client.head_object(Bucket=self.bucket, Key=object_key)
        except ClientError as exc:
            # HEAD has no body: a missing bucket is also a bare 404, reported as "absent"
            if str(exc.response.get("Error", {}).get("Code", "")) in _MISSING_CODES:
                return False
            raise self._error(exc, "check", uri) from exc
        except _BOTO_ERRORS as exc:
            raise self._error(exc, "check", uri) from exc
        return True

    def delete(self, uri: str) -> None:
        object_key = self._key_of(uri)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=object_key)
        except _BOTO_ERRORS as exc:
            raise self._error(exc, "delete", uri) from exc


def open_artifacts(spec: str | Path = DEFAULT_ARTIFACTS) -> ArtifactStore:
    """The artifact store ``spec`` (the value of ``OPENFLIX_ARTIFACTS``) names.

    Parameters
    ----------
    spec:
        A local directory (``"artifacts"``, ``"/srv/models"``, ``"file:///srv/models"``)
        or ``"s3://bucket"`` / ``"s3://bucket/prefix"``.

    Returns
    -------
    ArtifactStore
        :class:`LocalArtifacts` or :class:`S3Artifacts`; nothing is created yet.

    Raises
    ------
    ConfigError
        ``spec`` is empty, names no bucket, or uses a scheme other than ``s3`` or ``file``.
    """
    if isinstance(spec, Path):
        return LocalArtifacts(spec)
    text = spec.strip()
    hint = "expected a local directory or s3://bucket/prefix"
    if not text:
        raise ConfigError(f"{ENV_VAR} is empty; {hint}")
    match = _SCHEME.match(text)
    if match is None:
        bad = _SCHEME_NO_SLASHES.match(text)
        if bad is not None:
            raise ConfigError(f"{ENV_VAR}={spec!r} looks like a URL without '//'; {hint}")
        return LocalArtifacts(Path(text))
    scheme = match.group(1).lower()
    rest = text[match.end() :]
    if scheme == "s3":
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise ConfigError(f"{ENV_VAR}={spec!r} names no bucket; expected s3://bucket/prefix")
        if "?" in rest or "#" in rest:
            raise ConfigError(f"{ENV_VAR}={spec!r} must not carry a query or fragment; {hint}")
        try:
            return S3Artifacts(bucket, prefix)
        except ConfigError as exc:
            raise ConfigError(f"{ENV_VAR}={spec!r}: {exc}") from exc
    if scheme == "file":
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise ConfigError(f"{ENV_VAR}={spec!r} is not a local file:// URI; {hint}")
        return LocalArtifacts(Path(url2pathname(parts.path)))
    raise ConfigError(f"{ENV_VAR}={spec!r} uses the unsupported scheme '{scheme}://'; {hint}")
