"""docs/aws-api.md lists as supported or partial exactly the operations
src/conveyor/aws/ answers, and refuses only ones it does not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conveyor.aws.operations import SERVICES
from conveyor.aws.scheduler import OPERATIONS as SCHEDULER

DOC = Path(__file__).resolve().parents[2] / "docs" / "aws-api.md"
ANSWERED = {
    "dms": set(SERVICES["AmazonDMSv20160101"].operations),
    "stepfunctions": set(SERVICES["AWSStepFunctions"].operations),
    "redshift-data": set(SERVICES["RedshiftData"].operations),
    "events": set(SERVICES["AWSEvents"].operations),
    "scheduler": set(SCHEDULER),
    "glue": set(SERVICES["AWSGlue"].operations),
}


def sections() -> dict[str, str]:
    text = DOC.read_text()
    found = {}
    for match in re.finditer(r"^### .*?\(`([a-z-]+)`[^\n]*\n(.*?)(?=^### |\Z)", text, re.M | re.S):
        found[match.group(1)] = match.group(2)
    return found


@pytest.mark.parametrize("service", sorted(ANSWERED))
def test_the_table_is_what_is_answered(service: str) -> None:
    body = sections()[service]
    rows = re.findall(r"^\| (\w+) \| (supported|partial) \|", body, re.M)
    assert {name for name, _ in rows} == ANSWERED[service]
    refused = re.search(r"</summary>\s*(.*?)\s*</details>", body, re.S)
    assert refused is not None
    assert not set(refused.group(1).split(", ")) & ANSWERED[service]
