"""Paging of the AWS list operations (aws/paging.py) and DMS DescribeEvents'
own marker over the store's events."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conveyor.aws.base import AwsError, Paging
from conveyor.aws.operations import call
from conveyor.aws.paging import page
from conveyor.orchestration.service import Service
from conveyor.store.store import Store

LETTERS = Paging("Items", "Limit", "Token", maximum=10)


def letters(p: dict[str, Any]) -> dict[str, Any]:
    return {"Items": list("abcdefg"), "Other": 1}


def walk(paging: Paging, size: int) -> list[list[str]]:
    pages, token = [], None
    for _ in range(20):
        answer = page("Letters", paging, "Invalid", {"Limit": size, "Token": token}, letters)
        pages.append(answer["Items"])
        assert answer["Other"] == 1
        token = answer.get("Token")
        if token is None:
            return pages
    raise AssertionError("paging did not end")


def test_pages_cover_the_list_once() -> None:
    assert walk(LETTERS, 3) == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    assert walk(LETTERS, 7) == [list("abcdefg")]


def test_the_operation_is_asked_for_enough_rows() -> None:
    asked = []

    def counted(p: dict[str, Any]) -> dict[str, Any]:
        asked.append(p["Limit"])
        return {"Items": list("abcdefg")[: p["Limit"]]}

    paging = Paging("Items", "Limit", "Token", passes_limit=True)
    first = page("Counted", paging, "Invalid", {"Limit": 2}, counted)
    second = page("Counted", paging, "Invalid", {"Limit": 2, "Token": first["Token"]}, counted)
    assert (first["Items"], second["Items"], asked) == (["a", "b"], ["c", "d"], [3, 5])


@pytest.mark.parametrize("limit", [0, 11, -1, "5", True])
def test_a_page_size_out_of_range_is_refused(limit: Any) -> None:
    with pytest.raises(AwsError, match="Limit must be") as raised:
        page("Letters", LETTERS, "Invalid", {"Limit": limit}, letters)
    assert raised.value.code == "Invalid"


def test_zero_means_the_default_where_the_service_says_so() -> None:
    paging = Paging("Items", "Limit", "Token", default=2, zero_is_default=True)
    assert page("Letters", paging, "Invalid", {"Limit": 0}, letters)["Items"] == ["a", "b"]


@pytest.mark.parametrize(
    "token", ["nonsense", "eyJvcCI6Ik90aGVyIiwiYXQiOjN9", "eyJvcCI6IkxldHRlcnMiLCJhdCI6LTF9"]
)
def test_tokens_this_operation_did_not_give_are_refused(token: str) -> None:
    paging = Paging("Items", "Limit", "Token", invalid_token="InvalidToken")
    with pytest.raises(AwsError, match="is not a token Letters gave") as raised:
        page("Letters", paging, "Invalid", {"Token": token}, letters)
    assert raised.value.code == "InvalidToken"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    store = Store.open(tmp_path / "home")
    try:
        yield Service(store)
    finally:
        store.close()


def put(store: Store, n: int, task: str, when: datetime, category: str = "StateChange") -> None:
    store.put_event(
        {
            "id": f"e{n}",
            "time": when.isoformat(),
            "source": "aws.dms",
            "detail-type": "DMS Replication Task State Change",
            "resources": [f"arn:aws:dms:local:0:task:{task}"],
            "detail": {"detailMessage": f"message {n}", "category": category},
        }
    )


def test_describe_events_pages_newest_first_by_the_stores_position(service: Service) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(45):
        put(service.store, n, "a" if n % 3 else "b", start + timedelta(minutes=n))
    service.store.put_event(
        {"id": "other", "time": start.isoformat(), "source": "shop", "detail-type": "x", "detail": {}}
    )

    def messages(**params: Any) -> list[list[str]]:
        pages, marker = [], None
        for _ in range(10):
            _, answer = call(
                service, "AmazonDMSv20160101.DescribeEvents", params | ({"Marker": marker} if marker else {})
            )
            pages.append([e["Message"] for e in answer["Events"]])
            marker = answer.get("Marker")
            if marker is None:
                return pages
        raise AssertionError("paging did not end")

    pages = messages(MaxRecords=20)
    assert [len(p) for p in pages] == [20, 20, 5]
    assert [m for p in pages for m in p] == [f"message {n}" for n in reversed(range(45))]
    only_a = [m for p in messages(MaxRecords=20, SourceIdentifier="a") for m in p]
    assert only_a == [f"message {n}" for n in reversed(range(45)) if n % 3]
    window = {
        "StartTime": (start + timedelta(minutes=10)).isoformat(),
        "EndTime": (start + timedelta(minutes=12)).isoformat(),
    }
    assert messages(**window) == [["message 12", "message 11", "message 10"]]
    assert messages(EventCategories=["failure"]) == [[]]
    with pytest.raises(AwsError, match="MaxRecords must be between 20 and 100"):
        call(service, "AmazonDMSv20160101.DescribeEvents", {"MaxRecords": 10})
    with pytest.raises(AwsError, match="is not one DescribeEvents gave"):
        call(service, "AmazonDMSv20160101.DescribeEvents", {"Marker": "abc"})
