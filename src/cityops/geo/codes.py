"""Region-code conditions. Codes are digit strings that extend their parent's code, so "inside
region P" is a prefix test — written as a range, which every B-tree index serves whatever the
database's collation (a LIKE 'P%' does not on PostgreSQL's default collation)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, true
from sqlalchemy.orm import InstrumentedAttribute

MAX_CODE_LENGTH = 15


def within(column: InstrumentedAttribute[str], prefix: str) -> ColumnElement[bool]:
    """``column`` is ``prefix`` or a code under it."""
    if not prefix:
        return true()
    if not prefix.isdigit():
        return column == prefix  # not a code: matches nothing but itself
    return and_(column >= prefix, column <= prefix + "9" * (MAX_CODE_LENGTH - len(prefix)))
