"""Schedule expressions in EventBridge's language: ``rate(...)``, ``cron(...)`` and
EventBridge Scheduler's one-time ``at(yyyy-mm-ddThh:mm:ss)``.

``at(...)`` fires once, at that wall-clock time in the schedule's time zone (a
time the zone skips that day never fires; one it repeats fires at its first
occurrence, as cron does).

``rate(value unit)`` fires every ``value`` minutes, hours or days of elapsed time
(a day is 24 hours, also across a daylight-saving change). Fires fall on
``start + k * period``; without a start the grid is anchored at the Unix epoch, so
``rate(5 minutes)`` fires at :00, :05, ... and ``rate(1 day)`` at midnight UTC.

``cron(minutes hours day-of-month month day-of-week year)`` follows the AWS
dialect: six fields, one of day-of-month and day-of-week is ``?``; ``* , - /``
everywhere except ``/`` in day-of-week; a range may wrap (``FRI-MON``,
``50-10``); day-of-month also takes ``L`` (last day), ``L-n`` (n days before
it), ``LW`` (last weekday) and ``nW`` (the weekday nearest day n, never leaving
the month; no fire in a month without day n); day-of-week numbers days
1=SUN .. 7=SAT (or SUN-SAT) and also takes ``nL`` (the last such day of the
month), ``L`` alone (the last day of the week, Saturday) and ``n#k`` (the k-th
such day; no fire in a month without one); months are 1-12 or JAN-DEC, years
1970-2199. Names are case-insensitive.

A cron expression is evaluated on the wall clock of the schedule's IANA time
zone, with EventBridge Scheduler's documented daylight-saving policy:

* spring forward: a local time that does not exist that day is **skipped**
  (``cron(30 2 * * ? *)`` in Europe/Paris does not fire on the last Sunday of
  March);
* fall back: a local time that happens twice fires **once**, at its first
  occurrence (the earlier UTC instant).

Every datetime taken must be timezone-aware; every datetime returned is in UTC.
"""

from __future__ import annotations

import calendar
import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from conveyor.core.errors import ConfigError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FIRST_YEAR, LAST_YEAR = 1970, 2199
MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
CRON_FIELDS = "minutes hours day-of-month month day-of-week year"
UNITS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
# A wall-clock time can map to an instant up to a day away from another (Samoa skipped
# 2011-12-30): local candidates this far before `after` can never fire after it.
_OFFSET_SLACK = timedelta(hours=26)

_EXPRESSION = re.compile(r"\s*(rate|cron|at)\((.*)\)\s*", re.DOTALL)


def _fail(origin: str, expression: str, message: str) -> ConfigError:
    prefix = f"{origin}: " if origin else ""
    return ConfigError(f"{prefix}{expression}: {message}")


def _aws_weekday(day: date) -> int:
    """AWS day-of-week number: 1=SUN .. 7=SAT."""
    return (day.weekday() + 1) % 7 + 1


# ---------------------------------------------------------------------------- rate


@dataclass(frozen=True)
class _Rate:
    period: timedelta

    def fires(self, after: datetime, anchor: datetime) -> Iterator[datetime]:
        # In UTC: aware arithmetic within one zone would add wall-clock days, not 24 hours.
        after, anchor = after.astimezone(UTC), anchor.astimezone(UTC)
        periods = 0 if after < anchor else (after - anchor) // self.period + 1
        current = anchor + periods * self.period
        while True:
            yield current
            current += self.period


def _parse_rate(body: str, fail: _Fail) -> _Rate:
    parts = body.split()
    if len(parts) != 2:
        raise fail("a rate is rate(value unit), e.g. rate(5 minutes)")
    value_text, unit = parts
    if not value_text.isdigit() or int(value_text) == 0:
        raise fail(f"the rate value must be a positive whole number, got {value_text!r}")
    value = int(value_text)
    singular = unit[:-1] if unit.endswith("s") else unit
    if singular not in UNITS:
        choices = [*UNITS, *(f"{name}s" for name in UNITS)]
        close = difflib.get_close_matches(unit.lower(), choices, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise fail(f"unknown rate unit {unit!r}{hint}; use minute(s), hour(s) or day(s)")
    if value == 1 and unit != singular:
        raise fail(f"a rate of 1 takes the singular unit: rate(1 {singular})")
    if value > 1 and unit == singular:
        raise fail(f"a rate above 1 takes the plural unit: rate({value} {singular}s)")
    return _Rate(UNITS[singular] * value)


# ---------------------------------------------------------------------------- at


@dataclass(frozen=True)
class _At:
    instant: datetime | None
    """None: the local time does not exist in the zone (skipped by daylight saving)."""

    def fires(self, after: datetime) -> Iterator[datetime]:
        if self.instant is not None and self.instant > after:
            yield self.instant


def _parse_at(body: str, zone: ZoneInfo, fail: _Fail) -> _At:
    text = body.strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", text):
        raise fail("a one-time schedule is at(yyyy-mm-ddThh:mm:ss), e.g. at(2027-01-31T08:00:00)")
    try:
        local = datetime.fromisoformat(text)
    except ValueError as exc:
        raise fail(f"not a date and time: {exc}") from None
    first = local.replace(tzinfo=zone, fold=0)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local:
        return _At(None)  # a wall-clock time the zone skips that day
    return _At(first.astimezone(UTC))


# ---------------------------------------------------------------------------- cron fields


class _Fail:
    """Builds errors naming the expression and, when given, the cron field."""

    def __init__(self, origin: str, expression: str) -> None:
        self.origin = origin
        self.expression = expression

    def __call__(self, message: str, field_name: str = "", text: str = "") -> ConfigError:
        where = f"{field_name} field {text!r}: " if field_name else ""
        return _fail(self.origin, self.expression, where + message)


@dataclass(frozen=True)
class _Range:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    legend: str = ""

    def number(self, token: str, fail: _Fail, text: str) -> int:
        upper = token.upper()
        if upper in self.names:
            return self.names.index(upper) + self.low
        if not token.isdigit():
            legend = f" ({self.legend})" if self.legend else ""
            raise fail(f"{token!r} is not a number from {self.low} to {self.high}{legend}", self.name, text)
        value = int(token)
        if not self.low <= value <= self.high:
            legend = f" ({self.legend})" if self.legend else ""
            raise fail(f"{value} is out of range {self.low}-{self.high}{legend}", self.name, text)
        return value

    def parse(self, text: str, fail: _Fail, *, steps: bool = True) -> frozenset[int]:
        values: set[int] = set()
        for item in text.split(","):
            if not item:
                raise fail("empty list element", self.name, text)
            span, slash, step_text = item.partition("/")
            step = 1
            if slash:
                if not steps:
                    raise fail(f"'/' is not allowed in {self.name} (AWS allows , - * ? L #)", self.name, text)
                if not step_text.isdigit() or int(step_text) == 0:
                    raise fail(
                        f"the step after '/' must be a positive whole number, got {step_text!r}",
                        self.name,
                        text,
                    )
                step = int(step_text)
            if span == "*":
                first, last = self.low, self.high
            elif "-" in span:
                start_text, _, end_text = span.partition("-")
                first, last = self.number(start_text, fail, text), self.number(end_text, fail, text)
            else:
                first = self.number(span, fail, text)
                last = self.high if slash else first
            size = self.high - self.low + 1
            length = (last - first) % size  # a range may wrap: FRI-MON, 50-10
            values.update(
                self.low + (first - self.low + offset) % size for offset in range(0, length + 1, step)
            )
        return frozenset(values)


MINUTES = _Range("minutes", 0, 59)
HOURS = _Range("hours", 0, 23)
DAYS_OF_MONTH = _Range("day-of-month", 1, 31)
MONTHS = _Range("month", 1, 12, MONTH_NAMES, "or JAN-DEC")
DAYS_OF_WEEK = _Range("day-of-week", 1, 7, DAY_NAMES, "1=SUN .. 7=SAT, or SUN-SAT")
YEARS = _Range("year", FIRST_YEAR, LAST_YEAR)


@dataclass(frozen=True)
class _DayRule:
    """Which days of a month fire. ``kind`` is one of: dom, last, last-weekday, weekday-near, dow,
    last-dow, nth-dow."""

    kind: str
    values: frozenset[int] = frozenset()
    number: int = 0
    nth: int = 0

    def days(self, year: int, month: int) -> list[int]:
        length = calendar.monthrange(year, month)[1]
        if self.kind == "dom":
            return sorted(day for day in self.values if day <= length)
        if self.kind == "last":
            return [length - self.number] if length - self.number >= 1 else []
        if self.kind == "last-weekday":
            day = length
            while _aws_weekday(date(year, month, day)) in (1, 7):
                day -= 1
            return [day]
        if self.kind == "weekday-near":
            return self._nearest_weekday(year, month, length)
        weekdays = [
            day for day in range(1, length + 1) if _aws_weekday(date(year, month, day)) in self.values
        ]
        if self.kind == "dow":
            return weekdays
        if self.kind == "last-dow":
            return weekdays[-1:]
        return weekdays[self.nth - 1 : self.nth]

    def _nearest_weekday(self, year: int, month: int, length: int) -> list[int]:
        if self.number > length:
            return []
        for offset in (0, 1, -1, 2, -2):
            day = self.number + offset
            if 1 <= day <= length and _aws_weekday(date(year, month, day)) not in (1, 7):
                return [day]
        return []  # pragma: no cover - every window of five days holds a weekday


def _parse_day_of_month(text: str, fail: _Fail) -> _DayRule:
    upper = text.upper()
    if upper == "L":
        return _DayRule("last")
    if upper == "LW":
        return _DayRule("last-weekday")
    if upper.startswith("L-"):
        offset = upper[2:]
        if not offset.isdigit() or not 1 <= int(offset) <= 30:
            raise fail("L-n needs n from 1 to 30 (days before the last day)", DAYS_OF_MONTH.name, text)
        return _DayRule("last", number=int(offset))
    if upper.endswith("W"):
        return _DayRule("weekday-near", number=DAYS_OF_MONTH.number(upper[:-1], fail, text))
    if "L" in upper or "W" in upper or "#" in upper:
        raise fail(
            "L, L-n, LW and nW stand alone (not in a list or range); # is for day-of-week",
            "day-of-month",
            text,
        )
    return _DayRule("dom", DAYS_OF_MONTH.parse(text, fail))


def _parse_day_of_week(text: str, fail: _Fail) -> _DayRule:
    upper = text.upper()
    if upper == "L":
        return _DayRule("dow", frozenset({7}))
    if "#" in upper:
        day_text, _, nth_text = upper.partition("#")
        if not nth_text.isdigit() or not 1 <= int(nth_text) <= 5:
            raise fail(f"the week after '#' must be 1 to 5, got {nth_text!r}", DAYS_OF_WEEK.name, text)
        return _DayRule("nth-dow", frozenset({DAYS_OF_WEEK.number(day_text, fail, text)}), nth=int(nth_text))
    if upper.endswith("L"):
        return _DayRule("last-dow", frozenset({DAYS_OF_WEEK.number(upper[:-1], fail, text)}))
    return _DayRule("dow", DAYS_OF_WEEK.parse(text, fail, steps=False))


# ---------------------------------------------------------------------------- cron


@dataclass(frozen=True)
class _Cron:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    day_rule: _DayRule
    months: tuple[int, ...]
    years: tuple[int, ...]
    zone: ZoneInfo = field(compare=False)

    def local_times(self, floor: datetime) -> Iterator[datetime]:
        """Matching wall-clock times (naive) from ``floor`` on, in order."""
        for year in self.years:
            if year < floor.year:
                continue
            for month in self.months:
                if (year, month) < (floor.year, floor.month):
                    continue
                for day in self.day_rule.days(year, month):
                    if date(year, month, day) < floor.date():
                        continue
                    for hour in self.hours:
                        if datetime(year, month, day, hour, 59) < floor:
                            continue
                        for minute in self.minutes:
                            candidate = datetime(year, month, day, hour, minute)
                            if candidate >= floor:
                                yield candidate

    def fires(self, after: datetime) -> Iterator[datetime]:
        floor = after.astimezone(self.zone).replace(tzinfo=None) - _OFFSET_SLACK
        for local in self.local_times(max(floor, datetime(FIRST_YEAR, 1, 1))):
            aware = local.replace(tzinfo=self.zone)  # fold=0: the first of two occurrences
            instant = aware.astimezone(UTC)
            if instant.astimezone(self.zone).replace(tzinfo=None) != local:
                continue  # skipped by a spring-forward change: EventBridge Scheduler skips it too
            if instant > after:
                yield instant


def _parse_cron(body: str, zone: ZoneInfo, fail: _Fail) -> _Cron:
    fields = body.split()
    if len(fields) != 6:
        raise fail(f"AWS cron takes 6 fields ({CRON_FIELDS}), got {len(fields)}")
    minutes, hours, day_of_month, month, day_of_week, year = fields
    if day_of_month == "?" and day_of_week == "?":
        raise fail("day-of-month and day-of-week cannot both be '?': give one of them a value")
    if "?" not in (day_of_month, day_of_week):
        raise fail(
            f"one of day-of-month ({day_of_month!r}) and day-of-week ({day_of_week!r}) must be '?', "
            "e.g. cron(0 12 * * ? *) or cron(0 12 ? * MON-FRI *)"
        )
    if "?" in (minutes, hours, month, year):
        raise fail("'?' is allowed only in day-of-month or day-of-week")
    if day_of_month == "?":
        day_rule = _parse_day_of_week(day_of_week, fail)
    else:
        day_rule = _parse_day_of_month(day_of_month, fail)
    return _Cron(
        minutes=tuple(sorted(MINUTES.parse(minutes, fail))),
        hours=tuple(sorted(HOURS.parse(hours, fail))),
        day_rule=day_rule,
        months=tuple(sorted(MONTHS.parse(month, fail))),
        years=tuple(sorted(YEARS.parse(year, fail))),
        zone=zone,
    )


# ---------------------------------------------------------------------------- public


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule expression. ``start``, when set, is the first instant a fire may
    happen at and, for a rate, the anchor of its grid; ``end``, when set, the last."""

    expression: str
    timezone: str
    start: datetime | None
    _rule: _Rate | _Cron | _At
    end: datetime | None = None

    @property
    def one_time(self) -> bool:
        return isinstance(self._rule, _At)

    @classmethod
    def parse(
        cls,
        expression: str,
        timezone: str = "UTC",
        origin: str = "",
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Schedule:
        fail = _Fail(origin, expression)
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            prefix = f"{origin}: " if origin else ""
            raise ConfigError(
                f"{prefix}unknown time zone {timezone!r}: use an IANA name such as 'UTC' or 'Europe/Paris'"
            ) from None
        if start is not None:
            _require_aware(start, "start")
        if end is not None:
            _require_aware(end, "end")
        matched = _EXPRESSION.fullmatch(expression)
        if matched is None:
            raise fail(
                "a schedule expression is rate(value unit), "
                f"cron({CRON_FIELDS}) or at(yyyy-mm-ddThh:mm:ss), e.g. rate(5 minutes) or cron(0 2 * * ? *)"
            )
        kind, body = matched.groups()
        rule: _Rate | _Cron | _At
        if kind == "rate":
            rule = _parse_rate(body, fail)
        elif kind == "cron":
            rule = _parse_cron(body, zone, fail)
        else:
            rule = _parse_at(body, zone, fail)
        return cls(expression, timezone, start, rule, end)

    def _fires(self, after: datetime) -> Iterator[datetime]:
        _require_aware(after, "after")
        for instant in self._unbounded(after):
            if self.end is not None and instant > self.end:
                return
            yield instant

    def _unbounded(self, after: datetime) -> Iterator[datetime]:
        if isinstance(self._rule, _Rate):
            return self._rule.fires(after, self.start or EPOCH)
        if self.start is not None and after < self.start:
            after = self.start.astimezone(UTC) - timedelta(microseconds=1)
        return self._rule.fires(after)

    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire strictly after ``after`` (UTC), or None when the schedule has ended."""
        return next(self._fires(after), None)

    def fires_between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Fires in ``(start, end]`` in order: what a scheduler down from ``start`` to ``end`` missed."""
        _require_aware(end, "end")
        for instant in self._fires(start):
            if instant > end:
                return
            yield instant
