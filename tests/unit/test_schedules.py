"""Schedule expressions: next-fire tables, each cron row also checked against aws-croniter as an
oracle (in the schedule's wall-clock time), skipped with the reason in its id where the oracle
cannot answer; then DST, rate, catch-up and bad-expression cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from conveyor.core.errors import ConfigError
from conveyor.events.schedules import Schedule


def at(text: str) -> datetime:
    """'2026-03-30T07:00' in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fires(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    out: list[datetime] = []
    current: datetime | None = after
    while current is not None and len(out) < count:
        current = schedule.next_fire(current)
        if current is not None:
            out.append(current)
    return out


# (id, expression, time zone, after (UTC), expected fires (UTC), reason the oracle is skipped or None)
CRON: list[tuple[str, str, str, str, list[str], str | None]] = [
    (
        "every-15-minutes",
        "cron(0/15 * * * ? *)",
        "UTC",
        "2026-01-01T00:07",
        ["2026-01-01T00:15", "2026-01-01T00:30", "2026-01-01T00:45", "2026-01-01T01:00"],
        None,
    ),
    (
        "seed-003-daily-2am-gmt",
        "cron(0 2 * * ? *)",
        "UTC",
        "2026-01-01T02:00",
        ["2026-01-02T02:00", "2026-01-03T02:00"],
        None,
    ),
    (
        "weekdays-9-paris-spring-forward",
        "cron(0 9 ? * MON-FRI *)",
        "Europe/Paris",
        "2026-03-26T00:00",
        ["2026-03-26T08:00", "2026-03-27T08:00", "2026-03-30T07:00", "2026-03-31T07:00"],
        None,
    ),
    (
        "weekdays-9-paris-fall-back",
        "cron(0 9 ? * MON-FRI *)",
        "Europe/Paris",
        "2026-10-22T00:00",
        ["2026-10-22T07:00", "2026-10-23T07:00", "2026-10-26T08:00", "2026-10-27T08:00"],
        None,
    ),
    (
        "last-day-feb-leap-year",
        "cron(0 0 L 2 ? *)",
        "UTC",
        "2027-06-01T00:00",
        ["2028-02-29T00:00", "2029-02-28T00:00"],
        None,
    ),
    (
        "last-day-every-month",
        "cron(0 0 L * ? *)",
        "UTC",
        "2027-01-31T00:00",
        ["2027-02-28T00:00", "2027-03-31T00:00", "2027-04-30T00:00"],
        None,
    ),
    (
        "L-minus-3",
        "cron(0 12 L-3 * ? *)",
        "UTC",
        "2026-01-01T00:00",
        ["2026-01-28T12:00", "2026-02-25T12:00", "2026-03-28T12:00"],
        None,
    ),
    (
        "last-weekday",
        "cron(0 12 LW * ? *)",
        "UTC",
        "2026-01-01T00:00",
        ["2026-01-30T12:00", "2026-02-27T12:00", "2026-03-31T12:00", "2026-04-30T12:00", "2026-05-29T12:00"],
        "aws-croniter 2.1.1 cannot parse LW (int('L'))",
    ),
    (
        "15W-saturday-and-sunday",
        "cron(0 12 15W * ? *)",
        "UTC",
        "2026-02-01T00:00",
        ["2026-02-16T12:00", "2026-03-16T12:00", "2026-04-15T12:00"],
        None,
    ),
    ("15W-saturday", "cron(0 12 15W * ? *)", "UTC", "2026-08-01T00:00", ["2026-08-14T12:00"], None),
    ("1W-stays-in-month", "cron(0 12 1W * ? *)", "UTC", "2026-07-15T00:00", ["2026-08-03T12:00"], None),
    (
        "31W-only-in-long-months",
        "cron(0 12 31W * ? *)",
        "UTC",
        "2026-05-01T00:00",
        ["2026-05-29T12:00", "2026-07-31T12:00", "2026-08-31T12:00", "2026-10-30T12:00"],
        None,
    ),
    (
        "third-friday",
        "cron(0 12 ? * 6#3 *)",
        "UTC",
        "2026-01-01T00:00",
        ["2026-01-16T12:00", "2026-02-20T12:00", "2026-03-20T12:00"],
        None,
    ),
    (
        "fifth-monday-only-some-months",
        "cron(0 12 ? * 2#5 *)",
        "UTC",
        "2026-01-01T00:00",
        ["2026-03-30T12:00", "2026-06-29T12:00", "2026-08-31T12:00"],
        None,
    ),
    (
        "last-monday",
        "cron(0 12 ? * 2L *)",
        "UTC",
        "2026-01-01T00:00",
        ["2026-01-26T12:00", "2026-02-23T12:00", "2026-03-30T12:00"],
        None,
    ),
    (
        "L-alone-in-day-of-week-is-saturday",
        "cron(0 12 ? * L *)",
        "UTC",
        "2026-01-01T00:00",
        ["2026-01-03T12:00", "2026-01-10T12:00"],
        "aws-croniter 2.1.1 never fires day-of-week L alone (AWS: the last day of the week)",
    ),
    (
        "31st-only-in-months-that-have-one",
        "cron(0 0 31 * ? *)",
        "UTC",
        "2026-01-31T00:00",
        ["2026-03-31T00:00", "2026-05-31T00:00", "2026-07-31T00:00", "2026-08-31T00:00"],
        None,
    ),
    (
        "year-limited-ends",
        "cron(0 0 1 1 ? 2027-2028)",
        "UTC",
        "2027-06-01T00:00",
        ["2028-01-01T00:00"],
        None,
    ),
    ("february-30-never", "cron(0 0 30 2 ? *)", "UTC", "2027-06-01T00:00", [], None),
    ("last-year-2199", "cron(0 0 1 1 ? 2199)", "UTC", "2199-01-01T00:00", [], None),
    (
        "wrapping-day-range",
        "cron(0 12 ? * FRI-MON *)",
        "UTC",
        "2026-01-01T00:00",
        ["2026-01-02T12:00", "2026-01-03T12:00", "2026-01-04T12:00", "2026-01-05T12:00"],
        None,
    ),
    (
        "wrapping-minute-range-with-step",
        "cron(50-10/10 * * * ? *)",
        "UTC",
        "2026-05-01T00:00",
        ["2026-05-01T00:10", "2026-05-01T00:50", "2026-05-01T01:00", "2026-05-01T01:10"],
        None,
    ),
    (
        "names-any-case",
        "cron(0 12 ? jan,Jul MON *)",
        "UTC",
        "2026-05-01T00:00",
        ["2026-07-06T12:00", "2026-07-13T12:00", "2026-07-20T12:00", "2026-07-27T12:00", "2027-01-04T12:00"],
        None,
    ),
    (
        "hour-list-and-range",
        "cron(5 8,12-13 * * ? *)",
        "UTC",
        "2026-05-01T09:00",
        ["2026-05-01T12:05", "2026-05-01T13:05", "2026-05-02T08:05"],
        None,
    ),
    (
        "spring-forward-skips-nonexistent-time",
        "cron(30 2 * * ? *)",
        "Europe/Paris",
        "2026-03-28T12:00",
        ["2026-03-30T00:30", "2026-03-31T00:30"],
        None,
    ),
    (
        "fall-back-fires-once-at-first-occurrence",
        "cron(30 2 * * ? *)",
        "Europe/Paris",
        "2026-10-24T12:00",
        ["2026-10-25T00:30", "2026-10-26T01:30"],
        None,
    ),
    (
        "fall-back-every-30-minutes-repeated-hour-once",
        "cron(0/30 * * * ? *)",
        "Europe/Paris",
        "2026-10-24T23:00",
        ["2026-10-24T23:30", "2026-10-25T00:00", "2026-10-25T00:30", "2026-10-25T02:00"],
        None,
    ),
    (
        "new-york-spring-forward",
        "cron(0/30 1-3 * * ? *)",
        "America/New_York",
        "2026-03-08T05:00",
        ["2026-03-08T06:00", "2026-03-08T06:30", "2026-03-08T07:00", "2026-03-08T07:30"],
        None,
    ),
]


def _croniter(body: str) -> Any:
    """aws-croniter, the oracle (imported late: it is a test-only dependency)."""
    from aws_croniter import AwsCroniter  # type: ignore[import-untyped]

    return AwsCroniter(body)


def _oracle_wall_times(expression: str, zone: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    """aws-croniter's fires on the wall clock, minus times the day skips, plus our DST policy:
    a wall time fires at its first occurrence, and only if that is after `after`."""
    cron = _croniter(expression.removeprefix("cron(").removesuffix(")"))
    current: datetime | None = after.astimezone(zone).replace(tzinfo=None) - timedelta(hours=3)
    out: list[datetime] = []
    while current is not None and len(out) < count:
        current = cron.occurrence(current.replace(tzinfo=UTC)).next()
        if current is None:
            break
        current = current.replace(tzinfo=None)
        instant = current.replace(tzinfo=zone).astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) != current:
            continue  # does not exist that day
        if instant > after:
            out.append(current)
    return out


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [pytest.param(*row[1:5], id=row[0]) for row in CRON],
)
def test_cron_next_fires(expression: str, zone: str, after: str, expected: list[str]) -> None:
    schedule = Schedule.parse(expression, zone)
    got = fires(schedule, at(after), len(expected) + 1)
    assert got[: len(expected)] == [at(text) for text in expected]
    assert all(instant.tzinfo is UTC for instant in got)


def test_year_limited_schedule_ends_with_none() -> None:
    schedule = Schedule.parse("cron(0 0 1 1 ? 2027-2028)")
    assert schedule.next_fire(at("2028-01-01T00:00")) is None
    assert schedule.next_fire(at("2199-12-31T23:59")) is None


def _oracle_params() -> list[Any]:
    params = []
    for case, expression, zone, after, expected, reason in CRON:
        marks = [pytest.mark.skip(reason=f"oracle: {reason}")] if reason else []
        case_id = f"{case} [oracle: {reason}]" if reason else case
        params.append(pytest.param(expression, zone, after, len(expected) + 1, id=case_id, marks=marks))
    return params


@pytest.mark.parametrize(("expression", "zone", "after", "count"), _oracle_params())
def test_cron_agrees_with_aws_croniter(expression: str, zone: str, after: str, count: int) -> None:
    tz = ZoneInfo(zone)
    ours = [
        instant.astimezone(tz).replace(tzinfo=None)
        for instant in fires(Schedule.parse(expression, zone), at(after), count)
    ]
    assert ours == _oracle_wall_times(expression, tz, at(after), count)


def test_oracle_skips_are_real() -> None:
    """The oracle rows skipped above really fail in aws-croniter, so the skips cannot go stale."""
    with pytest.raises(ValueError):
        _croniter("0 12 LW * ? *")
    assert _croniter("0 12 ? * L *").occurrence(at("2026-01-01T00:00")).next() is None


# ---------------------------------------------------------------------------- rate


def test_rate_from_a_start() -> None:
    schedule = Schedule.parse("rate(5 minutes)", start=at("2026-01-01T00:02"))
    assert fires(schedule, at("2026-01-01T00:00"), 3) == [
        at("2026-01-01T00:02"),
        at("2026-01-01T00:07"),
        at("2026-01-01T00:12"),
    ]
    assert schedule.next_fire(at("2026-01-01T00:07")) == at("2026-01-01T00:12")
    assert schedule.next_fire(at("2026-01-01T00:06:59")) == at("2026-01-01T00:07")


def test_rate_without_start_is_anchored_at_the_epoch() -> None:
    assert Schedule.parse("rate(5 minutes)").next_fire(at("2026-01-01T00:02")) == at("2026-01-01T00:05")
    assert Schedule.parse("rate(1 day)").next_fire(at("2026-01-01T13:00")) == at("2026-01-02T00:00")
    assert Schedule.parse("rate(2 hours)").next_fire(at("2026-01-01T13:00")) == at("2026-01-01T14:00")


def test_rate_day_is_24_hours_across_dst() -> None:
    start = datetime(2026, 3, 28, 9, 0, tzinfo=ZoneInfo("Europe/Paris"))
    schedule = Schedule.parse("rate(1 day)", "Europe/Paris", start=start)
    got = fires(schedule, start, 2)
    assert got == [at("2026-03-29T08:00"), at("2026-03-30T08:00")]  # 10:00 and then 10:00 CEST


# ---------------------------------------------------------------------------- catch-up and start


def test_fires_between_is_start_exclusive_end_inclusive() -> None:
    schedule = Schedule.parse("cron(0 * * * ? *)")
    assert list(schedule.fires_between(at("2026-01-01T00:00"), at("2026-01-01T03:00"))) == [
        at("2026-01-01T01:00"),
        at("2026-01-01T02:00"),
        at("2026-01-01T03:00"),
    ]
    assert list(schedule.fires_between(at("2026-01-01T00:01"), at("2026-01-01T00:59"))) == []


def test_fires_between_ends_with_the_schedule() -> None:
    schedule = Schedule.parse("cron(0 0 1 1 ? 2026-2027)")
    got = list(schedule.fires_between(at("2025-06-01T00:00"), at("2030-01-01T00:00")))
    assert got == [at("2026-01-01T00:00"), at("2027-01-01T00:00")]


def test_fires_between_rate() -> None:
    schedule = Schedule.parse("rate(15 minutes)")
    got = list(schedule.fires_between(at("2026-01-01T00:00"), at("2026-01-01T01:00")))
    assert got == [at(f"2026-01-01T{t}") for t in ("00:15", "00:30", "00:45", "01:00")]


def test_cron_does_not_fire_before_start() -> None:
    schedule = Schedule.parse("cron(0 * * * ? *)", start=at("2026-01-01T05:00"))
    assert schedule.next_fire(at("2026-01-01T00:00")) == at("2026-01-01T05:00")
    assert schedule.next_fire(at("2026-01-01T05:00")) == at("2026-01-01T06:00")


def test_after_in_another_zone() -> None:
    schedule = Schedule.parse("cron(0 9 * * ? *)", "Europe/Paris")
    after = datetime(2026, 1, 5, 9, 30, tzinfo=ZoneInfo("Asia/Tokyo"))  # 00:30 UTC
    assert schedule.next_fire(after) == at("2026-01-05T08:00")


def test_naive_datetimes_are_refused() -> None:
    schedule = Schedule.parse("rate(5 minutes)")
    with pytest.raises(ValueError, match="after must be a timezone-aware datetime"):
        schedule.next_fire(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="start must be a timezone-aware datetime"):
        Schedule.parse("rate(5 minutes)", start=datetime(2026, 1, 1))


# ---------------------------------------------------------------------------- bad expressions

ORIGIN = "schedules.nightly.schedule_expression"
BAD: list[tuple[str, str, str]] = [
    (
        "cron(0 12 * * * *)",
        "UTC",
        "cron(0 12 * * * *): one of day-of-month ('*') and day-of-week ('*') must be '?'",
    ),
    ("cron(0 12 ? * ? *)", "UTC", "cron(0 12 ? * ? *): day-of-month and day-of-week cannot both be '?'"),
    (
        "cron(0 12 * * ?)",
        "UTC",
        "cron(0 12 * * ?): AWS cron takes 6 fields "
        "(minutes hours day-of-month month day-of-week year), got 5",
    ),
    (
        "cron(0 0 12 * * ? *)",
        "UTC",
        "AWS cron takes 6 fields (minutes hours day-of-month month day-of-week year), got 7",
    ),
    ("rate(1 minutes)", "UTC", "rate(1 minutes): a rate of 1 takes the singular unit: rate(1 minute)"),
    ("rate(1 hours)", "UTC", "a rate of 1 takes the singular unit: rate(1 hour)"),
    ("rate(5 minute)", "UTC", "rate(5 minute): a rate above 1 takes the plural unit: rate(5 minutes)"),
    ("rate(0 minutes)", "UTC", "the rate value must be a positive whole number, got '0'"),
    ("rate(1.5 hours)", "UTC", "the rate value must be a positive whole number, got '1.5'"),
    ("rate(5 secs)", "UTC", "unknown rate unit 'secs'; use minute(s), hour(s) or day(s)"),
    ("rate(5 minuts)", "UTC", "unknown rate unit 'minuts' (did you mean 'minutes'?)"),
    ("rate(5)", "UTC", "a rate is rate(value unit), e.g. rate(5 minutes)"),
    ("every 5 minutes", "UTC", "every 5 minutes: a schedule expression is rate(value unit), cron("),
    ("at(2026-01-01 00:00:00)", "UTC", "a one-time schedule is at(yyyy-mm-ddThh:mm:ss)"),
    ("at(2026-02-29T00:00:00)", "UTC", "not a date and time: day is out of range for month"),
    ("cron(60 * * * ? *)", "UTC", "minutes field '60': 60 is out of range 0-59"),
    ("cron(0 24 * * ? *)", "UTC", "hours field '24': 24 is out of range 0-23"),
    ("cron(0 0 32 * ? *)", "UTC", "day-of-month field '32': 32 is out of range 1-31"),
    ("cron(0 0 1 13 ? *)", "UTC", "month field '13': 13 is out of range 1-12 (or JAN-DEC)"),
    ("cron(0 0 1 JANU ? *)", "UTC", "month field 'JANU': 'JANU' is not a number from 1 to 12 (or JAN-DEC)"),
    (
        "cron(0 12 ? * 0 *)",
        "UTC",
        "day-of-week field '0': 0 is out of range 1-7 (1=SUN .. 7=SAT, or SUN-SAT)",
    ),
    ("cron(0 12 ? * 8 *)", "UTC", "day-of-week field '8': 8 is out of range 1-7"),
    ("cron(0 12 * * ? 1969)", "UTC", "year field '1969': 1969 is out of range 1970-2199"),
    ("cron(0 12 * * ? 2200)", "UTC", "year field '2200': 2200 is out of range 1970-2199"),
    (
        "cron(0/0 * * * ? *)",
        "UTC",
        "minutes field '0/0': the step after '/' must be a positive whole number, got '0'",
    ),
    ("cron(0 12 ? * */2 *)", "UTC", "day-of-week field '*/2': '/' is not allowed in day-of-week"),
    ("cron(0 12 ? * 6#6 *)", "UTC", "day-of-week field '6#6': the week after '#' must be 1 to 5, got '6'"),
    ("cron(0 12 ? * 8L *)", "UTC", "day-of-week field '8L': 8 is out of range 1-7"),
    ("cron(0 12 L-31 * ? *)", "UTC", "day-of-month field 'L-31': L-n needs n from 1 to 30"),
    ("cron(0 12 1,L * ? *)", "UTC", "day-of-month field '1,L': L, L-n, LW and nW stand alone"),
    ("cron(0 12 32W * ? *)", "UTC", "day-of-month field '32W': 32 is out of range 1-31"),
    ("cron(0 12 1,,2 * ? *)", "UTC", "day-of-month field '1,,2': empty list element"),
    ("cron(? 12 1 * ? *)", "UTC", "'?' is allowed only in day-of-month or day-of-week"),
]


@pytest.mark.parametrize(("expression", "zone", "message"), BAD, ids=[row[0] for row in BAD])
def test_bad_expression_says_what_and_where(expression: str, zone: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Schedule.parse(expression, zone, ORIGIN)
    text = str(caught.value)
    assert text.startswith(f"{ORIGIN}: {expression}: "), text
    assert message in text, text


def test_unknown_time_zone() -> None:
    with pytest.raises(ConfigError, match=rf"^{ORIGIN}: unknown time zone 'Europe/Pariss': use an IANA name"):
        Schedule.parse("cron(0 9 * * ? *)", "Europe/Pariss", ORIGIN)


def test_error_without_origin() -> None:
    with pytest.raises(ConfigError, match=r"^rate\(1 minutes\): a rate of 1"):
        Schedule.parse("rate(1 minutes)")


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        ("at(2027-01-31T08:00:00)", "UTC", "2027-01-01T00:00", "2027-01-31T08:00"),
        ("at(2027-01-31T08:00:00)", "America/New_York", "2027-01-01T00:00", "2027-01-31T13:00"),
        ("at(2027-01-31T08:00:00)", "UTC", "2027-01-31T08:00", None),  # strictly after: fired
        ("at(2027-03-28T02:30:00)", "Europe/Paris", "2027-01-01T00:00", None),  # skipped that day
        ("at(2027-10-31T02:30:00)", "Europe/Paris", "2027-01-01T00:00", "2027-10-31T00:30"),  # first of two
    ],
)
def test_one_time_schedules(expression: str, zone: str, after: str, expected: str | None) -> None:
    upcoming = Schedule.parse(expression, zone).next_fire(at(after))
    assert upcoming == (None if expected is None else at(expected))


def test_end_bounds_every_kind_of_schedule() -> None:
    end = at("2027-01-03T00:00")
    for expression in ("rate(1 day)", "cron(0 0 * * ? *)"):
        schedule = Schedule.parse(expression, end=end)
        fired = list(schedule.fires_between(at("2027-01-01T00:00"), at("2027-02-01T00:00")))
        assert fired == [at("2027-01-02T00:00"), at("2027-01-03T00:00")], expression
        assert schedule.next_fire(end) is None
