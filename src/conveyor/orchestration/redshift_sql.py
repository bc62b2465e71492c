"""Redshift SQL as a PostgreSQL or DuckDB warehouse runs it (sqlglot).

A warehouse endpoint with ``dialect: redshift`` takes the SQL users wrote for
Redshift (Data API statements, stack files) unchanged. Each statement is parsed
as Redshift and written in the warehouse's dialect, with what sqlglot gets wrong
for these pairs put right (each case is a row of the unit tests):

- storage clauses with no meaning here are dropped: column ``ENCODE``,
  ``DISTSTYLE``, ``DISTKEY``, ``SORTKEY`` (also ``INTERLEAVED``), ``BACKUP``;
- ``GETDATE()`` and ``SYSDATE`` are Redshift's UTC timestamps without a time
  zone (the statement's and the transaction's start), not ``CURRENT_TIMESTAMP``;
- ``DATEDIFF`` counts unit boundaries crossed, as Redshift does, where sqlglot's
  PostgreSQL form divides elapsed seconds;
- PostgreSQL: ``LISTAGG ... WITHIN GROUP (ORDER BY)`` becomes
  ``STRING_AGG(x, sep ORDER BY ...)`` and ``REGEXP_SUBSTR`` ``SUBSTRING(... FROM
  pattern)``; ``APPROXIMATE COUNT(DISTINCT)`` is counted exactly.

A stored procedure whose body is a list of SQL statements has each statement
translated. On PostgreSQL a body with control flow (IF, LOOP, DECLARE ...) is
kept as written: PL/pgSQL is PostgreSQL's own language, and a Redshift-only
function inside it fails when called, by name. DuckDB has no procedures: a
procedure is kept by Conveyor (``CreateProcedure``) and ``CALL`` runs its
statements in one transaction; one with parameters or control flow is refused.
A statement that cannot be translated is refused with its line.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, TokenError, UnsupportedError

from conveyor.core.errors import ConfigError

Warehouse = Literal["postgres", "duckdb"]
DIALECTS = ("redshift",)

_STORAGE = (
    exp.DistStyleProperty,
    exp.DistKeyProperty,
    exp.SortKeyProperty,
    exp.BackupProperty,
)
# Commands sqlglot does not model that run as written on each warehouse.
_PASS_THROUGH: dict[Warehouse, frozenset[str]] = {
    "postgres": frozenset({"VACUUM", "ANALYZE", "GRANT", "REVOKE", "CALL", "COMMENT"}),
    "duckdb": frozenset({"VACUUM", "ANALYZE"}),
}
_PROCEDURAL = re.compile(
    r"^\s*(IF|ELSIF|ELSE|END\s+IF|LOOP|END\s+LOOP|WHILE|FOR|FOREACH|DECLARE|RAISE|RETURN|EXIT|"
    r"CONTINUE|PERFORM|EXECUTE|GET|OPEN|FETCH|CLOSE|<<)\b",
    re.IGNORECASE,
)
_INTERLEAVED = re.compile(r"\bINTERLEAVED\s+SORTKEY\b", re.IGNORECASE)  # sqlglot reads only SORTKEY
_BODY = re.compile(r"^\s*BEGIN\b(?P<body>.*)\bEND\s*;?\s*$", re.IGNORECASE | re.DOTALL)
_CALL = re.compile(
    r"^\s*CALL\s+(?P<name>[\w$.\"]+)\s*\(\s*(?P<args>.*?)\s*\)\s*;?\s*$", re.IGNORECASE | re.DOTALL
)

_REDSHIFT = sqlglot.Dialect.get_or_raise("redshift")
logging.getLogger("sqlglot").setLevel(logging.ERROR)  # its fallbacks are reported here, by line


class Untranslatable(ConfigError):
    """Redshift SQL this warehouse cannot run as Redshift would; names the line."""


@dataclass(frozen=True)
class Statement:
    """One statement to run, and the line of the script it starts on."""

    sql: str
    line: int


@dataclass(frozen=True)
class CreateProcedure:
    """A procedure DuckDB cannot hold: Conveyor keeps its translated statements."""

    schema: str
    name: str
    statements: tuple[str, ...]
    replace: bool
    line: int


@dataclass(frozen=True)
class CallProcedure:
    schema: str
    name: str
    line: int


Translated = Statement | CreateProcedure | CallProcedure


def translate(script: str, warehouse: Warehouse) -> list[Translated]:
    """The statements of a Redshift ``script`` as ``warehouse`` runs them, in order.
    Raises Untranslatable naming the first statement that cannot be translated."""
    out: list[Translated] = []
    for text, line in split_statements(script):
        out.append(_one(text, line, warehouse))
    return out


def split_statements(script: str) -> list[tuple[str, int]]:
    """The statements of ``script`` with the line each starts on (semicolons
    inside strings, comments and ``$$`` bodies do not split)."""
    try:
        tokens = _REDSHIFT.tokenize(script)
    except TokenError as exc:
        raise Untranslatable(f"line {_line_of(str(exc))}: cannot read the SQL: {exc}") from None
    pieces: list[tuple[str, int]] = []
    start: int | None = None
    line = 1
    end = 0
    for token in tokens:
        if token.token_type is sqlglot.TokenType.SEMICOLON:
            if start is not None:
                pieces.append((script[start : end + 1], line))
            start = None
            continue
        if start is None:
            start, line = token.start, token.line
        end = token.end
    if start is not None:
        pieces.append((script[start : end + 1], line))
    return pieces


def _line_of(message: str) -> int:
    found = re.search(r"[Ll]ine:? (\d+)", message)
    return int(found.group(1)) if found else 1


def _one(text: str, line: int, warehouse: Warehouse) -> Translated:
    call = _CALL.match(text)
    if call is not None and warehouse == "duckdb":
        if call.group("args"):
            raise Untranslatable(f"line {line}: DuckDB procedures take no arguments here: {_short(text)}")
        schema, name = _qualified(call.group("name"))
        return CallProcedure(schema, name, line)
    try:
        tree = sqlglot.parse_one(_INTERLEAVED.sub("SORTKEY", text), read="redshift")
    except ParseError as exc:
        raise Untranslatable(
            f"line {line}: not Redshift SQL that Conveyor can read: {_first_error(exc)}"
        ) from None
    if isinstance(tree, exp.Command):
        keyword = str(tree.this).upper()
        if keyword in _PASS_THROUGH[warehouse]:
            return Statement(text.strip(), line)
        raise Untranslatable(f"line {line}: {keyword} has no translation for {warehouse}: {_short(text)}")
    if warehouse == "duckdb" and isinstance(tree, exp.Grant | exp.Revoke):
        keyword = "GRANT" if isinstance(tree, exp.Grant) else "REVOKE"
        raise Untranslatable(f"line {line}: {keyword} has no translation for duckdb (it has no privileges)")
    if isinstance(tree, exp.Create) and str(tree.args.get("kind", "")).upper() == "PROCEDURE":
        return _procedure(tree, text, line, warehouse)
    return Statement(_write(tree, line, warehouse), line)


def _write(tree: exp.Expr, line: int, warehouse: Warehouse) -> str:
    try:
        fixed = tree.transform(lambda node: _fix(node, warehouse))
        assert fixed is not None  # only clauses are removed, never a whole statement
        return fixed.sql(dialect=warehouse, unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as exc:
        raise Untranslatable(f"line {line}: {exc}") from None


def _fix(node: exp.Expr, warehouse: Warehouse) -> exp.Expr | None:
    """One node as the warehouse must see it (None removes it)."""
    if isinstance(node, exp.ColumnConstraint) and isinstance(
        node.args.get("kind"), exp.EncodeColumnConstraint
    ):
        return None
    if isinstance(node, _STORAGE):
        return None
    if isinstance(node, exp.CurrentTimestamp) and node.args.get("sysdate"):
        return _utc_now("TRANSACTION_TIMESTAMP", warehouse)
    if isinstance(node, exp.Anonymous) and str(node.this).upper() == "GETDATE":
        return _utc_now("STATEMENT_TIMESTAMP", warehouse)
    if isinstance(node, exp.CurrentTimestamp):
        return _utc_now("STATEMENT_TIMESTAMP", warehouse)
    if isinstance(node, exp.DateDiff | exp.TsOrDsDiff) and warehouse == "postgres":
        return _date_diff(node)
    if isinstance(node, exp.Copy) and _from_object_store(node):
        raise UnsupportedError(
            "COPY from S3 is not translated: load the files with a Conveyor task or the lake"
        )
    if warehouse == "postgres":
        if isinstance(node, exp.WithinGroup) and isinstance(node.this, exp.GroupConcat):
            concat = node.this
            order = node.expression
            return exp.Anonymous(
                this="STRING_AGG",
                expressions=[
                    concat.this,
                    exp.Order(this=concat.args.get("separator"), expressions=order.expressions),
                ],
            )
        if isinstance(node, exp.ApproxDistinct):
            return exp.Count(this=exp.Distinct(expressions=[node.this]))
        if isinstance(node, exp.RegexpExtract):
            return _regexp_substr(node)
    return node


def _regexp_substr(node: exp.RegexpExtract) -> exp.Expr:
    """REGEXP_SUBSTR(text, pattern): the whole first match (PostgreSQL's
    REGEXP_MATCH gives the groups, so the pattern is wrapped in one)."""
    if any(node.args.get(k) is not None for k in ("position", "occurrence", "parameters", "group")):
        raise UnsupportedError("REGEXP_SUBSTR with position, occurrence or parameters is not translated")
    text, pattern = node.this.sql("postgres"), node.expression.sql("postgres")
    return sqlglot.parse_one(f"(REGEXP_MATCH({text}, '(' || {pattern} || ')'))[1]", read="postgres")


def _utc_now(function: str, warehouse: Warehouse) -> exp.Expr:
    """Redshift's GETDATE()/SYSDATE: a timestamp without time zone, in UTC (the
    session time zone of Redshift unless changed)."""
    if warehouse == "duckdb":
        return sqlglot.parse_one("(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')", read="duckdb")
    return sqlglot.parse_one(f"({function}() AT TIME ZONE 'UTC')", read="postgres")


_CALENDAR = {"year": 1, "quarter": 4, "month": 12}
_CLOCK = {"week": 604800, "day": 86400, "hour": 3600, "minute": 60, "second": 1}


def _from_object_store(node: exp.Copy) -> bool:
    return any("s3://" in f.sql().lower() for f in node.args.get("files") or [])


def _date_diff(node: exp.DateDiff | exp.TsOrDsDiff) -> exp.Expr:
    """DATEDIFF(unit, start, end) as Redshift counts it: unit boundaries crossed."""
    unit = str(node.args.get("unit") or "day").strip("'\"").lower()
    unit = {
        "d": "day",
        "days": "day",
        "mon": "month",
        "months": "month",
        "y": "year",
        "yr": "year",
        "years": "year",
        "h": "hour",
        "hours": "hour",
        "m": "minute",
        "mins": "minute",
        "minutes": "minute",
        "s": "second",
        "secs": "second",
        "seconds": "second",
        "w": "week",
        "weeks": "week",
        "qtr": "quarter",
        "quarters": "quarter",
    }.get(unit, unit)
    start = f"CAST({node.expression.sql('postgres')} AS TIMESTAMP)"
    end = f"CAST({node.this.sql('postgres')} AS TIMESTAMP)"
    if unit in _CALENDAR:

        def months(ts: str) -> str:
            return f"(EXTRACT(YEAR FROM {ts}) * 12 + EXTRACT(MONTH FROM {ts}) - 1)"

        per = 12 // _CALENDAR[unit]
        text = f"CAST(FLOOR({months(end)} / {per}) - FLOOR({months(start)} / {per}) AS BIGINT)"
    elif unit in _CLOCK:
        trunc = "week" if unit == "week" else unit
        text = (
            f"CAST(EXTRACT(EPOCH FROM DATE_TRUNC('{trunc}', {end}) - DATE_TRUNC('{trunc}', {start}))"
            f" / {_CLOCK[unit]} AS BIGINT)"
        )
    else:
        raise UnsupportedError(f"DATEDIFF by {unit!r} is not translated")
    return sqlglot.parse_one(text, read="postgres")


def _procedure(tree: exp.Create, text: str, line: int, warehouse: Warehouse) -> Translated:
    body_node = tree.args.get("expression")
    body = str(body_node.this) if isinstance(body_node, exp.Heredoc | exp.Literal) else None
    signature = tree.this
    name_node = signature.this if isinstance(signature, exp.UserDefinedFunction) else signature
    schema, name = _qualified(name_node.sql(dialect="postgres"))
    params = signature.expressions if isinstance(signature, exp.UserDefinedFunction) else []
    match = _BODY.match(body or "")
    statements = _body_statements(match.group("body"), line) if match else None
    if warehouse == "duckdb":
        if params:
            raise Untranslatable(
                f"line {line}: procedure {schema}.{name}: DuckDB procedures take no parameters here"
            )
        if statements is None:
            raise Untranslatable(
                f"line {line}: procedure {schema}.{name}: DuckDB runs procedures whose body is a list of "
                "SQL statements (BEGIN ... END); this one has control flow"
            )
        translated = tuple(_write(sqlglot.parse_one(s, read="redshift"), n, warehouse) for s, n in statements)
        return CreateProcedure(schema, name, translated, bool(tree.args.get("replace")), line)
    if statements is None:
        return Statement(text.strip(), line)  # PL/pgSQL as written
    translated_pg = [_write(sqlglot.parse_one(s, read="redshift"), n, warehouse) for s, n in statements]
    head = text[: text.upper().index("AS", text.upper().index(")"))]
    lines = "\n".join(f"{sql};" for sql in translated_pg)
    return Statement(f"{head.strip()} AS $conveyor$\nBEGIN\n{lines}\nEND;\n$conveyor$", line)


def _body_statements(body: str, line: int) -> list[tuple[str, int]] | None:
    """The SQL statements of a procedure body, or None when it has control flow."""
    pieces = split_statements(body)
    for piece, _ in pieces:
        if _PROCEDURAL.match(_without_comments(piece)):
            return None
        try:
            tree = sqlglot.parse_one(piece, read="redshift")
        except ParseError:
            return None
        if isinstance(tree, exp.Command):
            return None
    return [(piece, line + n - 1) for piece, n in pieces]


def _without_comments(text: str) -> str:
    return re.sub(r"--[^\n]*\n?|/\*.*?\*/", "", text, flags=re.DOTALL)


def _qualified(name: str) -> tuple[str, str]:
    parts = [p.strip('"') for p in name.split(".")]
    if len(parts) == 1:
        return "main", parts[0].lower()
    return parts[-2].lower(), parts[-1].lower()


def _first_error(exc: ParseError) -> str:
    errors = exc.errors or [{}]
    first = errors[0]
    return str(first.get("description") or exc).split("\n")[0]


def _short(text: str) -> str:
    one = " ".join(text.split())
    return one if len(one) <= 80 else one[:77] + "..."
