"""A lake endpoint's settings, by the names of the migration service's S3 target
endpoint settings (``S3Settings``), as a stack file's ``settings`` holds them.

Keys the service knows but the lake does not act on (IAM, encryption, Parquet
tuning ...) are accepted and listed in ``LakeSettings.ignored``; any other key
is refused with the closest known name. Besides the service's names, the
settings take ``AccessKeyId``, ``SecretAccessKey`` and ``SessionToken`` for an
S3-compatible store (use secret references); without them the usual AWS
environment variables and credential chain apply.

The endpoint's own keys map onto service settings: ``bucket_path`` is
``BucketFolder`` (give one or the other) and ``format`` is ``DataFormat``.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_pascal

from conveyor.connectors.base import EndpointConfig
from conveyor.core.errors import ConfigError
from conveyor.core.names import did_you_mean
from conveyor.core.problems import Problem, format_problems, problems_from_validation_error

MAX_FILE_SIZE_KB = 1048576
"""The service's MaxFileSize ceiling and default: 1 GB, in KB."""

IGNORED_SETTINGS: frozenset[str] = frozenset(
    {
        "BucketName",
        "ServiceAccessRoleArn",
        "ExternalTableDefinition",
        "EncryptionMode",
        "ServerSideEncryptionKmsKeyId",
        "EncodingType",
        "DictPageSizeLimit",
        "RowGroupLength",
        "DataPageSize",
        "ParquetVersion",
        "EnableStatistics",
        "CannedAclForObjects",
        "PreserveTransactions",
        "IgnoreHeaderRows",
        "AddTrailingPaddingCharacter",
        "ExpectedBucketOwner",
        "GlueCatalogGeneration",
        "UseCsvNoSupValue",
        "CsvNoSupValue",
    }
)
"""Service settings accepted and not acted on (the store's own concerns, or
Parquet writer tuning left to pyarrow's defaults)."""


class DatePartitionSequence(StrEnum):
    YYYYMMDD = "YYYYMMDD"
    YYYYMMDDHH = "YYYYMMDDHH"
    YYYYMM = "YYYYMM"
    MMYYYYDD = "MMYYYYDD"
    DDMMYYYY = "DDMMYYYY"


class DatePartitionDelimiter(StrEnum):
    SLASH = "SLASH"
    DASH = "DASH"
    UNDERSCORE = "UNDERSCORE"
    NONE = "NONE"


class CompressionType(StrEnum):
    NONE = "NONE"
    GZIP = "GZIP"


_ESCAPES = {"\\n": "\n", "\\r": "\r", "\\t": "\t"}


def _unescape(text: str) -> str:
    """``\\n``, ``\\r`` and ``\\t`` as written in YAML single quotes or an extra
    connection attribute mean the control characters."""
    for escaped, char in _ESCAPES.items():
        text = text.replace(escaped, char)
    return text


class LakeSettings(BaseModel):
    """The S3 target endpoint settings the lake acts on, with the service's defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_pascal, populate_by_name=True)

    bucket_folder: str | None = None
    data_format: Literal["csv", "parquet"] | None = None
    add_column_name: bool = False
    include_op_for_full_load: bool = False
    cdc_inserts_only: bool = False
    cdc_inserts_and_updates: bool = False
    timestamp_column_name: str | None = None
    use_task_start_time_for_full_load_timestamp: bool = False
    date_partition_enabled: bool = False
    date_partition_sequence: DatePartitionSequence = DatePartitionSequence.YYYYMMDD
    date_partition_delimiter: DatePartitionDelimiter = DatePartitionDelimiter.SLASH
    date_partition_timezone: str = "UTC"
    csv_delimiter: str = ","
    csv_row_delimiter: str = "\n"
    csv_null_value: str = ""
    rfc4180: bool = True
    parquet_timestamp_in_millisecond: bool = False
    compression_type: CompressionType = CompressionType.NONE
    cdc_path: str | None = None
    max_file_size: int = Field(default=MAX_FILE_SIZE_KB, ge=1, le=MAX_FILE_SIZE_KB, description="KB")
    cdc_max_batch_interval: int = Field(default=60, ge=0, description="seconds")
    cdc_min_file_size: int = Field(default=32000, ge=0, description="KB")
    access_key_id: str | None = None
    secret_access_key: str | None = Field(default=None, repr=False)
    session_token: str | None = Field(default=None, repr=False)

    @field_validator("data_format", mode="before")
    @classmethod
    def _lower_format(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("date_partition_sequence", "date_partition_delimiter", "compression_type", mode="before")
    @classmethod
    def _upper_enum(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("csv_delimiter", "csv_row_delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        value = _unescape(value)
        if not value:
            raise ValueError("must not be empty")
        if '"' in value:
            raise ValueError("must not contain a double quote (the quoting character)")
        return value

    @field_validator("date_partition_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name such as 'UTC' or 'Asia/Seoul')"
            ) from None
        return value

    @field_validator("timestamp_column_name")
    @classmethod
    def _column_name(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.cdc_inserts_only and self.cdc_inserts_and_updates:
            raise ValueError("CdcInsertsOnly and CdcInsertsAndUpdates cannot both be true")
        if self.csv_delimiter in self.csv_row_delimiter or self.csv_row_delimiter in self.csv_delimiter:
            raise ValueError("CsvDelimiter and CsvRowDelimiter must differ")
        if self.timestamp_column_name == "Op":
            raise ValueError("TimestampColumnName must not be 'Op' (the operation column)")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.date_partition_timezone)

    @property
    def max_file_bytes(self) -> int:
        return self.max_file_size * 1024


@dataclass(frozen=True)
class LakeConfig:
    """A lake endpoint resolved: where it is, how to reach it, how files look."""

    name: str
    root: str
    """A local folder, or ``s3://bucket/prefix``."""
    bucket_path: str
    """The template of the folder under ``root`` (``raw/{date:%Y/%m/%d}``); may be empty."""
    data_format: Literal["csv", "parquet"]
    settings: LakeSettings
    endpoint_url: str | None = None
    region: str | None = None
    ignored: tuple[str, ...] = ()

    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    def render_bucket_path(self, when: datetime) -> str:
        """The bucket path for a load starting at ``when``: ``{date:...}`` takes
        strftime codes; no other field is known."""
        return render_bucket_path(self.bucket_path, when, self.name)


def render_bucket_path(template: str, when: datetime, endpoint: str = "lake") -> str:
    fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    unknown = [name for name in fields if name != "date"]
    if unknown:
        raise ConfigError(
            f"endpoint {endpoint!r}: bucket_path: unknown field {{{unknown[0]}}} (known: {{date}}, "
            "as in raw/{date:%Y/%m/%d})" + did_you_mean(unknown[0], ["date"])
        )
    try:
        rendered = template.format(date=when)
    except (ValueError, IndexError) as exc:
        raise ConfigError(f"endpoint {endpoint!r}: bucket_path: not a valid template: {exc}") from None
    return "/".join(part for part in rendered.split("/") if part)


def parse_settings(raw: dict[str, Any], endpoint: str = "lake") -> tuple[LakeSettings, tuple[str, ...]]:
    """The settings, and the names of the accepted-but-ignored keys given."""
    ignored = tuple(sorted(key for key in raw if key in IGNORED_SETTINGS))
    kept = {key: value for key, value in raw.items() if key not in IGNORED_SETTINGS}
    try:
        return LakeSettings.model_validate(kept), ignored
    except ValidationError as exc:
        problems = problems_from_validation_error(exc, LakeSettings, prefix=("settings",))
        raise ConfigError(format_problems(f"endpoint {endpoint!r}", problems)) from None


def lake_config(config: EndpointConfig) -> LakeConfig:
    """Read a lake endpoint as the stack model hands it over (``path`` plus
    ``options``: ``settings``, ``bucket_path``, ``format``, ``endpoint_url``,
    ``region``)."""
    if not config.path:
        raise ConfigError(
            f"endpoint {config.name!r}: a lake endpoint needs a path (a folder or s3://bucket/prefix)"
        )
    options = config.options
    raw = options.get("settings") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"endpoint {config.name!r}: settings: expected a mapping of keys")
    settings, ignored = parse_settings(raw, config.name)
    problems: list[Problem] = []
    bucket_path = options.get("bucket_path")
    if bucket_path is not None and settings.bucket_folder is not None:
        problems.append(("bucket_path", "give bucket_path or settings.BucketFolder, not both"))
    template = str(bucket_path if bucket_path is not None else settings.bucket_folder or "")
    option_format = options.get("format")
    data_format: Literal["csv", "parquet"]
    if settings.data_format is not None:
        if option_format not in (None, "csv", settings.data_format):
            problems.append(
                ("format", f"is {option_format!r} but settings.DataFormat is {settings.data_format!r}")
            )
        data_format = settings.data_format
    elif option_format in (None, "csv"):
        data_format = "csv"
    elif option_format == "parquet":
        data_format = "parquet"
    else:
        problems.append(("format", f"unknown format {option_format!r} (expected csv or parquet)"))
        data_format = "csv"
    root = config.path.rstrip("/") if config.path != "/" else config.path
    if root.startswith("s3://") and not root.removeprefix("s3://").strip("/"):
        problems.append(("path", "an s3:// path needs a bucket name (s3://bucket/prefix)"))
    try:
        list(string.Formatter().parse(template))
    except ValueError as exc:
        problems.append(("bucket_path", f"not a valid template: {exc}"))
    if problems:
        raise ConfigError(format_problems(f"endpoint {config.name!r}", problems))
    result = LakeConfig(
        name=config.name,
        root=root,
        bucket_path=template,
        data_format=data_format,
        settings=settings,
        endpoint_url=options.get("endpoint_url"),
        region=options.get("region"),
        ignored=ignored,
    )
    result.render_bucket_path(datetime(2000, 1, 1))  # unknown fields fail now, not at load time
    return result
