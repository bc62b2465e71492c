"""DynamoDB edge values (support/source_edges.py): items ``{pk: <row name>,
v: <value>}``, one DynamoDB table per group, the first item of each written
before the task starts (the columns are inferred from it). What each becomes
in PostgreSQL is the row's JSON without its key (``to_jsonb(t) - 'pk'``), so
a map's flattened columns show too. The source runs with
``conflicting_values: load_errors``: a value that does not fit its column
loads as NULL and is reported in ``awsdms_apply_exceptions``."""

from __future__ import annotations

from decimal import Decimal

from support.edge_values import Refused
from support.source_edges import SAME, Corpus, Group

CONFLICT = Refused("column 'v' (int64)")
OVERRIDE = {
    "e_override": {"v": "decimal(38,2)"},
    "e_n_int": {"v": "int64"},
    "e_n_38": {"v": "decimal(38,0)"},
}
"""``column_types`` for the corpus (table names without the test's prefix):
without them a full load, which samples every item, infers a json column for
an attribute of mixed types, while capture meets the mix after inference."""

LONG = "x" * 300_000
D38 = "12345678901234567890123456789012345678"

CORPUS = Corpus(
    "dynamodb",
    (
        Group(
            "n_int",
            "N (integers)",
            (
                ("seed", Decimal(1), '{"v": 1}'),
                ("zero", Decimal(0), '{"v": 0}'),
                ("neg_zero", Decimal("-0"), '{"v": 0}'),
                ("int64_max", Decimal("9223372036854775807"), '{"v": 9223372036854775807}'),
                ("int64_min", Decimal("-9223372036854775808"), '{"v": -9223372036854775808}'),
                ("past_double", Decimal("9007199254740993"), '{"v": 9007199254740993}'),
                ("text", "not a number", CONFLICT),
                ("null", None, '{"v": null}'),
            ),
        ),
        Group(
            "n_38",
            "N (38 digits, column_types decimal(38,0))",
            (
                ("seed", Decimal(D38), f'{{"v": {D38}}}'),
                ("neg", Decimal("-" + "9" * 38), f'{{"v": -{"9" * 38}}}'),
                ("exp", Decimal("1.2E+37"), '{"v": 12000000000000000000000000000000000000}'),
            ),
        ),
        Group(
            "n_frac",
            "N (fractions)",
            (
                ("seed", Decimal("0." + D38), f'{{"v": 0.{D38}}}', f'{{"v": "0.{D38}"}}'),
                ("half", Decimal("0.5"), '{"v": 0.5}', '{"v": "0.5"}'),
                ("tenth", Decimal("0.1"), '{"v": 0.1}', '{"v": "0.1"}'),
            ),
        ),
        Group(
            "n_extreme",
            "N (1E+125, 1E-130)",
            (
                ("big", Decimal("1E+125"), '{"v": 1' + "0" * 125 + "}", '{"v": "1E+125"}'),
                ("tiny", Decimal("1E-130"), '{"v": 0.' + "0" * 129 + "1}", '{"v": "1E-130"}'),
                ("neg_big", Decimal("-1E+125"), '{"v": -1' + "0" * 125 + "}", '{"v": "-1E+125"}'),
                (
                    "max",
                    Decimal("9.9999999999999999999999999999999999999E+125"),
                    '{"v": ' + "9" * 38 + "0" * 88 + "}",
                    '{"v": "9.9999999999999999999999999999999999999E+125"}',
                ),
            ),
        ),
        Group(
            "s",
            "S",
            (
                ("seed", "a", '{"v": "a"}'),
                ("empty", "", '{"v": ""}'),
                ("emoji", "😀🚀 𝄞 ☃", '{"v": "😀🚀 𝄞 ☃"}'),
                ("null_word", "NULL", '{"v": "NULL"}'),
                ("quotes", 'a"b\\c\n', '{"v": "a\\"b\\\\c\\n"}'),
                ("long", LONG, f'{{"v": "{LONG}"}}'),
                ("null", None, '{"v": null}'),
            ),
        ),
        Group(
            "b",
            "B",
            (
                ("seed", b"\x00\xff", '{"v": "\\\\x00ff"}'),
                ("nul", b"\x00", '{"v": "\\\\x00"}'),
            ),
        ),
        Group("bool", "BOOL", (("seed", True, '{"v": true}'), ("false", False, '{"v": false}'))),
        Group(
            "ss",
            "SS",
            (
                ("seed", {"a"}, '{"v": ["a"]}'),
                ("emoji", {"😀"}, '{"v": ["😀"]}'),
                ("empty_member", {""}, '{"v": [""]}'),
            ),
        ),
        Group(
            "ns",
            "NS",
            (
                ("seed", {Decimal("1.5"), Decimal("2")}, '{"v": [1.5, 2.0]}'),
                ("neg", {Decimal("-0.5")}, '{"v": [-0.5]}'),
            ),
        ),
        Group(
            "bs",
            "BS",
            (
                ("seed", {b"\x00"}, '{"v": ["\\\\x00"]}'),
                ("ff", {b"\xff\x00"}, '{"v": ["\\\\xff00"]}'),
            ),
        ),
        Group(
            "m",
            "M (nested)",
            (
                ("seed", {"a": {"b": Decimal(1)}, "c": "x"}, '{"v__c": "x", "v__a__b": 1}'),
                ("sparse", {"c": "y"}, '{"v__c": "y", "v__a__b": null}'),
                ("empty", {}, '{"v__c": null, "v__a__b": null}'),
            ),
        ),
        Group(
            "l",
            "L",
            (
                ("seed", [Decimal(1), Decimal(2)], '{"v": [1, 2]}'),
                ("empty", [], '{"v": []}'),
            ),
        ),
        Group(
            "lmix",
            "L (mixed)",
            (
                (
                    "seed",
                    ["x", Decimal(1), {"k": True}, None],
                    '{"v": ["x", 1, {"k": true}, null]}',
                    SAME,
                    '{"v": "[\\"x\\",1,{\\"k\\":true},null]"}',  # the lake: the JSON's text
                ),
            ),
        ),
        Group(
            "override",
            "N (column_types decimal(38,2))",
            (
                ("seed", Decimal("1.25"), '{"v": 1.25}'),
                ("text", "n/a", Refused("'v'")),
                ("too_precise", Decimal("1.234"), Refused("'v'")),
            ),
        ),
    ),
    split_refused=False,
)
