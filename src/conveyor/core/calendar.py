"""Proleptic Gregorian day counts for any year, where Python's ``date`` stops
at 1..9999 and Arrow's text casts stop near it: PostgreSQL dates run from
4714 BC to 5874897 AD, timestamps to 294276 AD."""

from __future__ import annotations

import re

US_PER_DAY = 86_400_000_000


def civil_from_days(days: int) -> tuple[int, int, int]:
    """Proleptic Gregorian (year, month, day) of a day count since 1970-01-01,
    with astronomical years (0 is 1 BC); H. Hinnant's algorithm."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def days_from_civil(year: int, month: int, day: int) -> int:
    """The inverse of ``civil_from_days``."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    mp = month - 3 if month > 2 else month + 9
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def iso_date(days: int) -> str:
    """Days since 1970 as ISO 8601 text with astronomical years (year 0 is
    1 BC, -4713 is 4714 BC; more than four digits when needed), as Arrow
    writes the dates it can."""
    year, month, day = civil_from_days(days)
    sign = "-" if year < 0 else ""
    return f"{sign}{abs(year):04d}-{month:02d}-{day:02d}"


def iso_timestamp(micros: int) -> str:
    """Microseconds since 1970 as ``iso_date`` plus ``HH:MM:SS.ffffff``."""
    days, rest = divmod(micros, US_PER_DAY)
    seconds, fraction = divmod(rest, 1_000_000)
    clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{fraction:06d}"
    return f"{iso_date(days)} {clock}"


_ISO = re.compile(r"(-?)(\d{4,})-(\d\d)-(\d\d)(?:[ T](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?)?")


def parse_iso(text: str) -> tuple[int, int]:
    """The inverse of ``iso_date``/``iso_timestamp``: (days since 1970,
    microseconds into the day). Raises ValueError for other text."""
    match = _ISO.fullmatch(text)
    if match is None:
        raise ValueError(f"not an ISO date or timestamp: {text[:40]!r}")
    sign, year, month, day, hh, mm, ss, fraction = match.groups()
    days = days_from_civil(-int(year) if sign else int(year), int(month), int(day))
    micros = 0
    if hh is not None:
        micros = (int(hh) * 3600 + int(mm) * 60 + int(ss)) * 1_000_000 + int((fraction or "0").ljust(6, "0"))
    return days, micros


def pg_date(days: int) -> str:
    """Days since 1970 in PostgreSQL's ISO input form (``4714-11-24 BC``)."""
    year, month, day = civil_from_days(days)
    if year <= 0:
        return f"{1 - year:04d}-{month:02d}-{day:02d} BC"
    return f"{year:04d}-{month:02d}-{day:02d}"


def pg_timestamp(micros: int, zone: str = "") -> str:
    """Microseconds since 1970 in PostgreSQL's ISO input form, ``zone`` (such
    as ``+00``) after the time and ``BC`` last."""
    days, rest = divmod(micros, US_PER_DAY)
    seconds, fraction = divmod(rest, 1_000_000)
    clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{fraction:06d}"
    date_text = pg_date(days)
    if date_text.endswith(" BC"):
        return f"{date_text[:-3]} {clock}{zone} BC"
    return f"{date_text} {clock}{zone}"
