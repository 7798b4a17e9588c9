"""Cells that spreadsheets open safely: a text that starts like a formula is defused (CWE-1236)."""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def safe_cell(value: object) -> object:
    """`value`, with a leading `'` when it is a text a spreadsheet would run as a formula.
    Numbers, and texts that are numbers (-1, +3.5), are never altered."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _is_number(value):
        return "'" + value
    return value
