"""pgoutput tuples as COPY text lines (copy_lines.py), built by hand byte for byte.

PostgreSQL itself reading such lines back is checked in
tests/integration/test_encoded_rows.py."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.connectors.postgres.copy_lines import TEXT_FORMAT, encoded_format, line_values, tuple_line

UTF8 = "utf-8"
# What a pgoutput value can be in these tests: text (sent as 't'), None (sent
# as 'n'), or a raw tag with its bytes ('u' unchanged TOAST, 'b' binary).
Raw = tuple[bytes, bytes | None]


def tuple_data(values: Sequence[str | bytes | Raw | None], count: int | None = None) -> bytes:
    """A pgoutput TupleData: int16 column count, then per column 'n', or 't' +
    int32 length + the value's bytes (text in UTF-8), or a raw tag."""
    out = [struct.pack("!h", len(values) if count is None else count)]
    for value in values:
        if value is None:
            out.append(b"n")
        elif isinstance(value, tuple):
            tag, data = value
            out.append(tag if data is None else tag + struct.pack("!i", len(data)) + data)
        else:
            data = value.encode(UTF8) if isinstance(value, str) else value
            out.append(b"t" + struct.pack("!i", len(data)) + data)
    return b"".join(out)


def line_of(
    values: Sequence[str | bytes | Raw | None],
    keys: Sequence[tuple[int, str, Any]] = (),
    columns: int | None = None,
    prefix: bytes = b"",
) -> tuple[bytes, tuple[Any, ...]] | None:
    payload = prefix + tuple_data(values) + b"trailing message bytes"
    return tuple_line(len(values) if columns is None else columns, keys, payload, len(prefix), UTF8)


def test_plain_values_and_the_key() -> None:
    # The tuple sits inside a larger message: an INSERT's 'I' + relation oid + 'N'.
    prefix = b"I" + struct.pack("!I", 16384) + b"N"
    assert line_of(["1", "abc", "2024-06-01"], [(0, "id", int)], prefix=prefix) == (
        b"1\tabc\t2024-06-01\n",
        (1,),
    )
    assert line_of(["x"]) == (b"x\n", ())  # no key (a table without a primary key)
    assert line_of(["", ""]) == (b"\t\n", ())  # empty strings are not NULL


def test_nulls_and_a_literal_backslash_n() -> None:
    assert line_of([None, "1", None]) == (b"\\N\t1\t\\N\n", ())
    # A value that is the two characters \N is escaped: it is not NULL.
    result = line_of(["\\N", None, "a"])
    assert result == (b"\\\\N\t\\N\ta\n", ())
    assert line_values(result[0], ["a", "b", "c"], [str] * 3, UTF8) == {"a": "\\N", "b": None, "c": "a"}
    # Only-NULL lines take the fast path: their backslashes are the markers.
    assert line_of([None, None]) == (b"\\N\t\\N\n", ())


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("a\tb", b"a\\tb"),
        ("line\nnext", b"line\\nnext"),
        ("cr\rlf\r\n", b"cr\\rlf\\r\\n"),
        ("back\\slash", b"back\\\\slash"),
        ("\\x00ff5c0a", b"\\\\x00ff5c0a"),  # bytea's hex output
        ("\\\\t", b"\\\\\\\\t"),  # a backslash then a literal \t: not a tab
        ("\t\n\r\\", b"\\t\\n\\r\\\\"),
    ],
)
def test_special_characters_are_escaped(value: str, escaped: bytes) -> None:
    result = line_of(["7", value, None], [(0, "id", int)])
    assert result == (b"7\t" + escaped + b"\t\\N\n", (7,))
    assert line_values(result[0], ["id", "v", "n"], [int, str, str], UTF8) == {"id": 7, "v": value, "n": None}


def test_multibyte_utf8() -> None:
    text = "välue 🚀 日本語 \u00a0"
    result = line_of([text, "ü\tß"], [(0, "name", str)])
    assert result == (text.encode(UTF8) + b"\t" + "ü\\tß".encode(UTF8) + b"\n", (text,))
    assert line_values(result[0], ["name", "v"], [str, str], UTF8) == {"name": text, "v": "ü\tß"}


def test_other_encodings() -> None:
    assert encoded_format("utf-8") == f"{TEXT_FORMAT}/utf-8" != encoded_format("latin-1")
    payload = struct.pack("!h", 1) + b"t" + struct.pack("!i", 2) + "é\t".encode("latin-1")
    assert tuple_line(1, [(0, "k", str)], payload, 0, "latin-1") == (b"\xe9\\t\n", ("é\t",))


@pytest.mark.parametrize("tag", [(b"u", None), (b"b", b"\x00\x01")], ids=["unchanged-toast", "binary"])
def test_unchanged_toast_or_binary_value_is_not_encoded(tag: Raw) -> None:
    assert line_of(["1", tag, "x"], [(0, "id", int)]) is None
    assert line_of([tag]) is None


def test_wrong_column_count_is_not_encoded() -> None:
    assert line_of(["1", "a"], [(0, "id", int)], columns=3) is None
    assert line_of(["1", "a", "b"], [(0, "id", int)], columns=2) is None


def test_null_key_is_not_encoded() -> None:
    assert line_of([None, "a"], [(0, "id", int)]) is None
    assert line_of(["1", None, "a"], [(0, "a", int), (1, "b", str)]) is None
    # A key that is the text \N is not NULL.
    assert line_of(["\\N", "v"], [(0, "k", str)]) == (b"\\\\N\tv\n", ("\\N",))


def test_composite_keys_with_converters_in_key_order() -> None:
    def upper(text: str) -> str:
        return text.upper()

    # Key order is the primary key's, not the columns': (c, a).
    result = line_of(["10", "payload\t1", "b\\c"], [(2, "c", upper), (0, "a", int)])
    assert result == (b"10\tpayload\\t1\tb\\\\c\n", ("B\\C", 10))


def test_line_values_converts_and_refuses_a_wrong_field_count() -> None:
    line = b"1\t2.5\t\\N\tx\\\\y\n"
    assert line_values(line, ["i", "f", "n", "s"], [int, float, int, str], UTF8) == {
        "i": 1,
        "f": 2.5,
        "n": None,
        "s": "x\\y",
    }
    with pytest.raises(ValueError, match="3 fields, the table 2 columns"):
        line_values(b"1\t2\t3\n", ["a", "b"], [str, str], UTF8)


def _unescaped_tabs(line: bytes) -> int:
    """Tabs that are separators (not part of a backslash escape)."""
    count, i = 0, 0
    while i < len(line):
        if line[i : i + 1] == b"\\":
            i += 2
            continue
        count += line[i : i + 1] == b"\t"
        i += 1
    return count


TRICKY = st.sampled_from(["\\N", "\\", "\t", "\n", "\r", "\\t", "\\\\N", "N", "", " ", "🚀", "\r\n"])
VALUE = st.one_of(st.none(), st.text(max_size=30), st.lists(TRICKY, max_size=5).map("".join))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(VALUE, min_size=1, max_size=12))
def test_lines_round_trip(values: list[str | None]) -> None:
    names = [f"c{i}" for i in range(len(values))]
    result = line_of(values)
    assert result is not None
    line, key = result
    assert key == ()
    assert line_values(line, names, [str] * len(values), UTF8) == dict(zip(names, values, strict=True))
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and b"\r" not in line
    assert _unescaped_tabs(line) == len(values) - 1
    # Every field is \N exactly when the value is NULL.
    fields = line[:-1].split(b"\t")
    assert [f == b"\\N" for f in fields] == [v is None for v in values]
