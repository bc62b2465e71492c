"""A DynamoDB table's scan checkpoint file: one per table name, always a valid
file name (a 255-character table name failed the load with "File name too long",
and names differing only in replaced characters shared one file)."""

from __future__ import annotations

from conveyor.connectors.dynamodb.scan_checkpoint import file_name


def test_plain_short_names_keep_their_file_name() -> None:
    assert file_name("Orders") == "Orders"
    assert file_name("Orders_Items.v-2") == "Orders_Items.v-2"


def test_every_name_has_its_own_short_file_name() -> None:
    names = ["a b", "a_b", "a/b", "a\\b", "t" * 255, "t" * 254 + "u", "..", ".hidden", "日本語", "🚀"]
    names.append("x" * 101)
    files = [file_name(n) for n in names]
    assert len(set(files)) == len(names)
    for name, file in zip(names, files, strict=True):
        assert len((file + ".json.tmp").encode()) <= 255, name
        assert "/" not in file and "\\" not in file and not file.startswith("."), file
