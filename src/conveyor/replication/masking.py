"""Data-masking transformation actions, on Arrow columns (full load) and on
single values (CDC), with the same result either way.

* ``data-masking-digits-mask``: every ASCII digit becomes the rule's
  ``value`` (one printable character): ``C6BGJ566`` -> ``C#BGJ###``.
* ``data-masking-digits-randomize``: every ASCII digit becomes a random digit
  (a new draw for every row and every change).
* ``data-masking-hash-mask``: the value becomes the SHA-256 of its UTF-8
  bytes, as 64 upper-case hex digits; a varchar shorter than 64 becomes 64 wide.

NULL stays NULL. Only text columns can be masked.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from conveyor.core.arrow_compute import pc
from conveyor.core.types import ColumnType, Kind, varchar

HASH_LENGTH = 64
_DIGITS = "0123456789"


@dataclass(frozen=True)
class Mask:
    """A masking action on one target column; ``rule`` names it in messages."""

    column: str
    action: str
    value: str | None
    rule: str

    def target_type(self, column_type: ColumnType) -> ColumnType:
        if self.action == "data-masking-hash-mask" and (column_type.length or HASH_LENGTH) < HASH_LENGTH:
            return varchar(HASH_LENGTH)
        return column_type

    def one(self) -> Callable[[str], str]:
        if self.action == "data-masking-digits-mask":
            table = str.maketrans(_DIGITS, (self.value or "#") * 10)
            return lambda text: text.translate(table)
        if self.action == "data-masking-digits-randomize":
            return lambda text: "".join(secrets.choice(_DIGITS) if c in _DIGITS else c for c in text)
        return lambda text: hashlib.sha256(text.encode()).hexdigest().upper()

    def array(self, values: pa.Array) -> pa.Array:
        if self.action == "data-masking-digits-mask":
            replacement = (self.value or "#").replace("\\", "\\\\")
            return pc.replace_substring_regex(values, pattern="[0-9]", replacement=replacement)
        mask = self.one()
        return pa.array([None if v is None else mask(v) for v in values.to_pylist()], type=values.type)


def maskable(column_type: ColumnType) -> bool:
    return column_type.kind is Kind.TEXT
