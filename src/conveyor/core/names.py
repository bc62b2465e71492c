"""Suggesting the name a user probably meant: every "unknown X" message in
Conveyor ends with the closest known name, found the same way."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word`` (same letters in another case first)."""
    choices = sorted(set(candidates))
    folded = {choice.casefold(): choice for choice in choices}
    if word.casefold() in folded:
        return folded[word.casefold()]
    close = difflib.get_close_matches(word.casefold(), list(folded), n=1, cutoff=0.6)
    return folded[close[0]] if close else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'X'?"`` for the closest candidate, or ``""``."""
    match = closest(word, candidates)
    return f"; did you mean '{match}'?" if match is not None else ""
