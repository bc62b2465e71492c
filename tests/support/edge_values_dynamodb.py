"""DynamoDB edge values."""

from __future__ import annotations

from support.source_edges import Corpus

CORPUS = Corpus("dynamodb", ())
