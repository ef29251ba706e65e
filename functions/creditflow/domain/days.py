"""Whole days on the calendar, as the admins' windows (analytics, revenue) count them."""

from __future__ import annotations

from datetime import date, timedelta


def days_before(day: date, days: int) -> date:
    """`days` days before `day`, or the calendar's first day when that is earlier."""
    return day - timedelta(days=days) if (day - date.min).days > days else date.min
