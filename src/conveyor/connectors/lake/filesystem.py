"""Where a lake's files live: a local folder or an S3-compatible bucket, behind
one small interface whose every write is atomic.

Local: a file is written as ``.<name>.tmp-<uuid>`` in its final folder, flushed
and fsynced, then ``os.replace``d onto its name and the folder fsynced, so a
reader sees the old file or the whole new one. S3: a file is written complete
to a local temporary file (or held in memory) and sent as one object (one PUT,
or one multipart upload that S3 shows only once completed), so no partial
object is ever visible. Relative paths use ``/`` on both.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from conveyor.connectors.lake.settings import LakeConfig
from conveyor.core.errors import ConfigError, ConnectionFailed, TransientError

TMP_MARK = ".tmp-"
CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 60.0


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


class Staged:
    """A file being written: ``local_path`` is where to write it; ``publish``
    makes it visible under its final name at once, ``discard`` drops it."""

    def __init__(self, fs: LakeFS, rel: str, local_path: str) -> None:
        self.fs = fs
        self.rel = rel
        self.local_path = local_path
        self.done = False

    def publish(self) -> None:
        self.fs._publish(self)
        self.done = True

    def discard(self) -> None:
        if not self.done:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.local_path)
            self.done = True


class LakeFS:
    """The lake's root, local or S3."""

    def __init__(self, config: LakeConfig) -> None:
        self.config = config
        self._spool: tempfile.TemporaryDirectory[str] | None = None
        self._lock = threading.Lock()
        if config.is_s3:
            rest = config.root.removeprefix("s3://")
            self.bucket, _, self.prefix = rest.partition("/")
            self.prefix = self.prefix.strip("/")
            self.fs: pafs.FileSystem = _s3_filesystem(config)
            self.base = _join(self.bucket, self.prefix)
        else:
            self.bucket = ""
            self.prefix = ""
            self.fs = pafs.LocalFileSystem()
            self.base = str(Path(config.root).resolve())

    @property
    def is_s3(self) -> bool:
        return self.config.is_s3

    def full(self, rel: str) -> str:
        """The path of ``rel`` in ``self.fs``."""
        return f"{self.base}/{rel.strip('/')}" if rel.strip("/") else self.base

    def location(self, rel: str) -> str:
        """``rel`` as a person would write it (``s3://...`` or a local path)."""
        return f"s3://{self.full(rel)}" if self.is_s3 else self.full(rel)

    def check(self) -> str:
        try:
            if self.is_s3:
                info = self.fs.get_file_info(self.bucket)
                if info.type == pafs.FileType.NotFound:
                    raise ConnectionFailed(
                        f"endpoint {self.config.name!r}: bucket {self.bucket!r} does not exist"
                    )
            else:
                Path(self.base).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConnectionFailed(
                f"endpoint {self.config.name!r}: cannot reach {self.location('')}: {exc}"
            ) from None
        return f"lake at {self.location('')} ({self.config.data_format})"

    # --- writing -----------------------------------------------------------

    def stage(self, rel: str) -> Staged:
        """A new staged file for ``rel``: in its final folder under a hidden
        temporary name (local), or in a local spool folder (S3)."""
        name = rel.rsplit("/", 1)[-1]
        if self.is_s3:
            with self._lock:
                if self._spool is None:
                    self._spool = tempfile.TemporaryDirectory(prefix="conveyor-lake-")
                spool = self._spool.name
            local = os.path.join(spool, f"{uuid.uuid4().hex}-{name}")
        else:
            folder = os.path.dirname(self.full(rel))
            os.makedirs(folder, exist_ok=True)
            local = os.path.join(folder, f".{name}{TMP_MARK}{uuid.uuid4().hex}")
        return Staged(self, rel, local)

    def _publish(self, staged: Staged) -> None:
        if self.is_s3:
            try:
                pafs.copy_files(
                    staged.local_path,
                    self.full(staged.rel),
                    source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=self.fs,
                )
            except OSError as exc:
                raise TransientError(f"uploading {self.location(staged.rel)}: {exc}") from None
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(staged.local_path)
            return
        with open(staged.local_path, "rb+") as handle:
            os.fsync(handle.fileno())
        target = self.full(staged.rel)
        os.replace(staged.local_path, target)
        _fsync_dir(os.path.dirname(target))

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write a whole small file atomically."""
        if self.is_s3:
            try:
                with self.fs.open_output_stream(self.full(rel), compression=None) as out:
                    out.write(data)  # buffered: sent as one PUT when the stream closes
            except OSError as exc:
                raise TransientError(f"writing {self.location(rel)}: {exc}") from None
            return
        staged = self.stage(rel)
        try:
            with open(staged.local_path, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            target = self.full(rel)
            os.replace(staged.local_path, target)
            _fsync_dir(os.path.dirname(target))
        except BaseException:
            staged.discard()
            raise

    def delete(self, rel: str) -> None:
        try:
            self.fs.delete_file(self.full(rel))
        except FileNotFoundError:
            pass
        except OSError as exc:
            if self.is_s3 and "NoSuchKey" in str(exc):
                return
            raise TransientError(f"deleting {self.location(rel)}: {exc}") from None
        if not self.is_s3:
            _fsync_dir(os.path.dirname(self.full(rel)))

    def remove_stale_temporaries(self, rel_dir: str) -> None:
        """Drop what a killed writer left in ``rel_dir`` (local hidden temporaries)."""
        if self.is_s3:
            return
        folder = self.full(rel_dir)
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(folder):
                if entry.is_file() and entry.name.startswith(".") and TMP_MARK in entry.name:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)

    # --- reading -----------------------------------------------------------

    def read_bytes(self, rel: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(self.full(rel), compression=None) as stream:
                data: bytes = stream.read()
                return data
        except FileNotFoundError:
            return None
        except OSError as exc:
            if "NoSuchKey" in str(exc) or "does not exist" in str(exc).lower():
                return None
            raise TransientError(f"reading {self.location(rel)}: {exc}") from None

    def list_files(self, rel_dir: str) -> list[str]:
        """Names of the visible files directly in ``rel_dir`` (none when it is
        missing), sorted; hidden names (``.x``) are left out."""
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.full(rel_dir), allow_not_found=True))
        except OSError as exc:
            raise TransientError(f"listing {self.location(rel_dir)}: {exc}") from None
        names = [info.base_name for info in infos if info.type == pafs.FileType.File]
        return sorted(name for name in names if not name.startswith("."))

    def list_tree(self, rel_dir: str) -> list[str]:
        """Relative paths (from ``rel_dir``) of every visible file below it."""
        try:
            infos = self.fs.get_file_info(
                pafs.FileSelector(self.full(rel_dir), allow_not_found=True, recursive=True)
            )
        except OSError as exc:
            raise TransientError(f"listing {self.location(rel_dir)}: {exc}") from None
        base = self.full(rel_dir).rstrip("/") + "/"
        found = []
        for info in infos:
            if info.type != pafs.FileType.File:
                continue
            rel = info.path.removeprefix(base)
            if any(part.startswith(".") for part in rel.split("/")):
                continue
            found.append(rel)
        return sorted(found)

    def open_input(self, rel: str) -> pa.NativeFile:
        return self.fs.open_input_file(self.full(rel))

    def size(self, rel: str) -> int:
        info = self.fs.get_file_info(self.full(rel))
        return int(info.size or 0)

    def close(self) -> None:
        with self._lock:
            if self._spool is not None:
                self._spool.cleanup()
                self._spool = None


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _s3_filesystem(config: LakeConfig) -> pafs.S3FileSystem:
    settings = config.settings
    kwargs: dict[str, object] = {
        "connect_timeout": CONNECT_TIMEOUT,
        "request_timeout": REQUEST_TIMEOUT,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=3),
    }
    region = config.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        kwargs["region"] = region
    if settings.access_key_id or settings.secret_access_key:
        if not (settings.access_key_id and settings.secret_access_key):
            raise ConfigError(
                f"endpoint {config.name!r}: settings: AccessKeyId and SecretAccessKey go together"
            )
        kwargs["access_key"] = settings.access_key_id
        kwargs["secret_key"] = settings.secret_access_key
        if settings.session_token:
            kwargs["session_token"] = settings.session_token
    if config.endpoint_url:
        url = urlsplit(config.endpoint_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ConfigError(
                f"endpoint {config.name!r}: endpoint_url must look like http://host:port or https://host"
            )
        kwargs["endpoint_override"] = url.netloc
        kwargs["scheme"] = url.scheme
        kwargs["force_virtual_addressing"] = False
    try:
        return pafs.S3FileSystem(**kwargs)
    except (OSError, ValueError) as exc:
        raise ConnectionFailed(f"endpoint {config.name!r}: cannot set up S3 access: {exc}") from None
