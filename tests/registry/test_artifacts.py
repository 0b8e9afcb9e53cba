"""Artifact stores: one contract run against a local directory and a real (moto) S3 server."""

from __future__ import annotations

import os
import random
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import IO

import boto3.session
import pytest
from botocore.config import Config

from openflix.errors import ConfigError, DataError, ModelFileError
from openflix.registry import artifacts
from openflix.registry.artifacts import (
    ENV_VAR,
    ArtifactStore,
    LocalArtifacts,
    S3Artifacts,
    open_artifacts,
)

MiB = 1024 * 1024


def write_bytes(path: Path, size: int, seed: int = 0) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def visible_files(root: Path) -> list[str]:
    """Files under ``root`` a reader could take for an artifact (hidden temp files excluded)."""
    if not root.exists():
        return []
    return sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")
    )


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalArtifacts(tmp_path / "artifacts")
    s3: S3Artifacts = request.getfixturevalue("s3_store")
    return s3


class TestContract:
    """What every :class:`ArtifactStore` promises."""

    @pytest.mark.parametrize("size", [0, 3 * MiB, 9 * MiB], ids=["empty", "3MiB", "9MiB-multipart"])
    def test_put_get_round_trip(self, store: ArtifactStore, tmp_path: Path, size: int) -> None:
        data = write_bytes(tmp_path / "src" / "model.npz", size, seed=size)
        uri = store.put("als/v3/model.npz", tmp_path / "src" / "model.npz")
        assert uri == store.uri("als/v3/model.npz")
        dest = tmp_path / "out" / "deeper" / "model.npz"
        assert store.get(uri, dest) == dest
        assert dest.read_bytes() == data

    def test_put_replaces_previous_artifact(self, store: ArtifactStore, tmp_path: Path) -> None:
        write_bytes(tmp_path / "a.bin", 1000, seed=1)
        new = write_bytes(tmp_path / "b.bin", 2000, seed=2)
        store.put("m/model.bin", tmp_path / "a.bin")
        uri = store.put("m/model.bin", tmp_path / "b.bin")
        assert store.get(uri, tmp_path / "out.bin").read_bytes() == new

    def test_exists(self, store: ArtifactStore, tmp_path: Path) -> None:
        write_bytes(tmp_path / "m.bin", 100)
        assert store.exists(store.uri("m/model.bin")) is False
        uri = store.put("m/model.bin", tmp_path / "m.bin")
        assert store.exists(uri) is True
        assert store.exists(store.uri("m/other.bin")) is False
        assert store.exists(store.uri("m")) is False  # a "directory" is not an artifact

    def test_delete(self, store: ArtifactStore, tmp_path: Path) -> None:
        write_bytes(tmp_path / "m.bin", 100)
        uri = store.put("a/model.bin", tmp_path / "m.bin")
        kept = store.put("b/model.bin", tmp_path / "m.bin")
        store.delete(uri)
        assert not store.exists(uri)
        assert store.exists(kept)
        store.delete(uri)  # deleting a missing artifact is not an error
        with pytest.raises(ModelFileError, match="does not exist"):
            store.get(uri, tmp_path / "out.bin")

    def test_get_missing_uri_says_so(self, store: ArtifactStore, tmp_path: Path) -> None:
        uri = store.uri("never/written.bin")
        dest = tmp_path / "out" / "model.bin"
        with pytest.raises(ModelFileError) as info:
            store.get(uri, dest)
        message = str(info.value)
        assert uri in message
        assert "does not exist" in message
        assert "publish the model again" in message
        assert not dest.exists()

    def test_put_missing_source(self, store: ArtifactStore, tmp_path: Path) -> None:
        with pytest.raises(ModelFileError, match="expected a file, found nothing"):
            store.put("m/model.bin", tmp_path / "absent.bin")
        with pytest.raises(ModelFileError, match="expected a file, found a directory"):
            store.put("m/model.bin", tmp_path)
        assert not store.exists(store.uri("m/model.bin"))

    @pytest.mark.parametrize("key", ["", "/abs/model.bin", "a/../b", "a//b", "./a", "a/", "a\\b"])
    def test_malformed_key(self, store: ArtifactStore, tmp_path: Path, key: str) -> None:
        write_bytes(tmp_path / "m.bin", 10)
        with pytest.raises(DataError, match="artifact key"):
            store.put(key, tmp_path / "m.bin")
        with pytest.raises(DataError, match="artifact key"):
            store.uri(key)

    @pytest.mark.parametrize(
        "uri", ["gs://bucket/model.bin", "file:///elsewhere/model.bin", "s3://other-bucket/models/v1/m.bin"]
    )
    def test_foreign_uri(self, store: ArtifactStore, tmp_path: Path, uri: str) -> None:
        with pytest.raises(ModelFileError, match="open the store that produced it"):
            store.exists(uri)
        with pytest.raises(ModelFileError, match="open the store that produced it"):
            store.get(uri, tmp_path / "out.bin")
        with pytest.raises(ModelFileError, match="open the store that produced it"):
            store.delete(uri)

    def test_describe(self, store: ArtifactStore) -> None:
        text = store.describe()
        assert text
        assert text in repr(store)


class TestLocal:
    def test_uri_is_absolute_file_uri(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        store = LocalArtifacts(Path("rel dir"))
        write_bytes(tmp_path / "m.bin", 10)
        uri = store.put("als/model v1.bin", tmp_path / "m.bin")
        assert uri == (tmp_path / "rel dir" / "als" / "model v1.bin").resolve().as_uri()
        assert uri.startswith("file:///")
        assert store.exists(uri)

    @staticmethod
    def failing_copy(src: IO[bytes], dst: IO[bytes], length: int = 0) -> None:
        dst.write(src.read(1024))  # some bytes reach the disk, then the disk "fills up"
        dst.flush()
        raise OSError(28, "No space left on device")

    def test_failed_put_leaves_no_artifact(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        store = LocalArtifacts(tmp_path / "artifacts")
        write_bytes(tmp_path / "m.bin", 1 * MiB)
        monkeypatch.setattr(artifacts.shutil, "copyfileobj", self.failing_copy)
        with pytest.raises(ModelFileError, match="No space left on device"):
            store.put("m/model.bin", tmp_path / "m.bin")
        assert not store.exists(store.uri("m/model.bin"))
        assert list((tmp_path / "artifacts" / "m").iterdir()) == []  # the temp file is gone too

    def test_failed_put_keeps_previous_version(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        store = LocalArtifacts(tmp_path / "artifacts")
        old = write_bytes(tmp_path / "old.bin", 5000, seed=1)
        write_bytes(tmp_path / "new.bin", 5000, seed=2)
        uri = store.put("m/model.bin", tmp_path / "old.bin")
        with monkeypatch.context() as mp:
            mp.setattr(artifacts.shutil, "copyfileobj", self.failing_copy)
            with pytest.raises(ModelFileError):
                store.put("m/model.bin", tmp_path / "new.bin")
        assert store.get(uri, tmp_path / "out.bin").read_bytes() == old

    @pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
    def test_sigkill_mid_put_leaves_no_artifact(self, tmp_path: Path) -> None:
        root, source = tmp_path / "artifacts", tmp_path / "m.bin"
        data = write_bytes(source, 2 * MiB)
        script = textwrap.dedent(
            """
            import shutil, sys, time
            from pathlib import Path
            from openflix.registry.artifacts import LocalArtifacts

            def stall(src, dst, length=0):
                dst.write(src.read(4096))
                dst.flush()
                print("writing", flush=True)
                time.sleep(60)

            shutil.copyfileobj = stall
            LocalArtifacts(Path(sys.argv[1])).put("m/model.bin", Path(sys.argv[2]))
            """
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(root), str(source)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "writing"
            assert len(list((root / "m").iterdir())) == 1  # a temp file, mid-write
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        store = LocalArtifacts(root)
        assert not store.exists(store.uri("m/model.bin"))
        assert visible_files(root) == []
        uri = store.put("m/model.bin", source)  # the leftover temp file does not get in the way
        assert store.get(uri, tmp_path / "out.bin").read_bytes() == data
        assert visible_files(root) == ["m/model.bin"]

    @pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
    def test_artifacts_are_world_readable(self, tmp_path: Path) -> None:
        store = LocalArtifacts(tmp_path / "artifacts")
        write_bytes(tmp_path / "m.bin", 10)
        store.put("m.bin", tmp_path / "m.bin")
        assert stat.S_IMODE((tmp_path / "artifacts" / "m.bin").stat().st_mode) == 0o644

    def test_root_that_is_a_file(self, tmp_path: Path) -> None:
        (tmp_path / "f").write_text("x")
        with pytest.raises(ConfigError, match=ENV_VAR):
            LocalArtifacts(tmp_path / "f")

    def test_uri_of_root_or_outside(self, tmp_path: Path) -> None:
        store = LocalArtifacts(tmp_path / "artifacts")
        with pytest.raises(ModelFileError, match="root"):
            store.exists(store.root.as_uri())
        with pytest.raises(ModelFileError, match="outside"):
            store.exists(store.root.as_uri() + "/../escape.bin")


class TestS3:
    def test_objects_land_under_prefix(self, s3_store: S3Artifacts, tmp_path: Path, moto_s3: str) -> None:
        write_bytes(tmp_path / "m.bin", 10)
        uri = s3_store.put("als/model.bin", tmp_path / "m.bin")
        assert uri == f"s3://{s3_store.bucket}/models/v1/als/model.bin"
        raw = boto3.session.Session().client("s3", endpoint_url=moto_s3)
        keys = [o["Key"] for o in raw.list_objects_v2(Bucket=s3_store.bucket)["Contents"]]
        assert keys == ["models/v1/als/model.bin"]

    def test_endpoint_comes_from_environment(self, s3_store: S3Artifacts, moto_s3: str) -> None:
        assert s3_store.endpoint == moto_s3
        assert moto_s3 in s3_store.describe()

    def test_ensure_bucket_is_idempotent(self, s3_store: S3Artifacts) -> None:
        s3_store.ensure_bucket()
        s3_store.ensure_bucket()

    def test_missing_bucket(self, moto_s3: str, tmp_path: Path) -> None:
        store = S3Artifacts(f"absent-{uuid.uuid4().hex[:12]}", "p")
        write_bytes(tmp_path / "m.bin", 10)
        with pytest.raises(ModelFileError, match=r"does not exist.*ensure_bucket\(\)"):
            store.put("model.bin", tmp_path / "m.bin")
        with pytest.raises(ModelFileError, match=r"does not exist.*ensure_bucket\(\)"):
            store.delete(store.uri("model.bin"))
        with pytest.raises(ModelFileError, match="does not exist"):
            store.get(store.uri("model.bin"), tmp_path / "out.bin")

    def test_unreachable_endpoint(self, moto_s3: str, tmp_path: Path) -> None:
        with socket.socket() as sock:  # a port nobody listens on
            sock.bind(("127.0.0.1", 0))
            dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=dead,
            config=Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=2),
        )
        store = S3Artifacts("bucket", "p", client=client)
        write_bytes(tmp_path / "m.bin", 10)
        with pytest.raises(ModelFileError, match=f"cannot reach S3 at {dead}.*AWS_ENDPOINT_URL"):
            store.exists(store.uri("model.bin"))
        with pytest.raises(ModelFileError, match="cannot reach S3"):
            store.put("model.bin", tmp_path / "m.bin")
        with pytest.raises(ModelFileError, match="cannot reach S3"):
            store.get(store.uri("model.bin"), tmp_path / "out.bin")

    def test_open_artifacts_round_trip(self, s3_store: S3Artifacts, tmp_path: Path) -> None:
        store = open_artifacts(f"s3://{s3_store.bucket}/models/v1")
        data = write_bytes(tmp_path / "m.bin", 1000)
        uri = store.put("model.bin", tmp_path / "m.bin")
        assert s3_store.exists(uri)
        assert s3_store.get(uri, tmp_path / "out.bin").read_bytes() == data


class TestOpenArtifacts:
    def test_default_is_local_artifacts_dir(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        store = open_artifacts()
        assert isinstance(store, LocalArtifacts)
        assert store.root == tmp_path.resolve() / "artifacts"
        assert not store.root.exists()  # nothing is created until the first put

    def test_local_forms(self, tmp_path: Path) -> None:
        for spec in (str(tmp_path / "a"), tmp_path / "a", (tmp_path / "a").as_uri(), f"  {tmp_path / 'a'}  "):
            store = open_artifacts(spec)
            assert isinstance(store, LocalArtifacts)
            assert store.root == (tmp_path / "a").resolve()

    @pytest.mark.parametrize(
        ("spec", "bucket", "prefix"),
        [
            ("s3://bucket/models/v1", "bucket", "models/v1"),
            ("s3://bucket", "bucket", ""),
            ("s3://bucket/", "bucket", ""),
            ("S3://my.bucket-1//models//", "my.bucket-1", "models"),
        ],
    )
    def test_s3(self, spec: str, bucket: str, prefix: str) -> None:
        store = open_artifacts(spec)
        assert isinstance(store, S3Artifacts)
        assert (store.bucket, store.prefix) == (bucket, prefix)
        assert store.uri("m.bin") == f"s3://{bucket}/{prefix + '/' if prefix else ''}m.bin"

    @pytest.mark.parametrize(
        "spec",
        [
            "",
            "   ",
            "s3://",
            "s3:///models",
            "s3:/bucket/models",
            "s3://b/models",  # bucket name too short
            "s3://bad bucket/models",
            "s3://bucket/../models",
            "s3://bucket/models?versionId=3",
            "gs://bucket/models",
            "https://example.com/models",
            "file://otherhost/models",
        ],
    )
    def test_bad_spec(self, spec: str) -> None:
        with pytest.raises(ConfigError, match=ENV_VAR):
            open_artifacts(spec)
