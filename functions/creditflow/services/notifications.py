"""A user's notifications on the bus, /notifications/{uid}/{key}, written by every service that tells a user
something (a payment received or failed, a low balance, a task finished or refused, images ready, an automatic
top-up), and bounded in one place: a user's oldest leave the mirror as new ones arrive (down to `kept`, once a tenth
more have piled up), whether or not the user ever runs a task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..domain.outbox import notification_key
from ..ports import Realtime

NOTIFICATIONS = "/notifications/{uid}"
NOTIFIED_IN_ORDER = "at"  # what a notification is ordered by (indexed in database.rules.json, as RTDB requires)


class Notifications:
    """`kept`: how many notifications a user's mirror keeps, the newest by `at` (None: all)."""

    def __init__(self, realtime: Realtime, kept: int | None = None) -> None:
        self.realtime, self.kept = realtime, kept

    def notify(self, uid: str, about: str, record: dict[str, Any], *, unless_there: bool = False) -> None:
        """Write the notification under a key made of `about` (the id of what it tells of), so that a second
        delivery writes the same one (`unless_there`: writes nothing when it is there already), then keep the
        newest `kept`."""
        where = f"{NOTIFICATIONS.format(uid=uid)}/{notification_key(about)}"
        if unless_there and self.realtime.get(where) is not None:
            return
        self.realtime.set(where, record)
        if self.kept is not None:
            keep_newest(self.realtime, NOTIFICATIONS.format(uid=uid), NOTIFIED_IN_ORDER, self.kept)


def keep_newest(realtime: Realtime, path: str, order: str, kept: int,
                removable: Callable[[Any], bool] = lambda _: True) -> None:
    """Once `path` holds more than `kept` and a tenth (`over_kept`), the oldest children by `order` leave it down to
    `kept`, those `removable` says may. Each call is one shallow read; the query, which reads every child, and the
    deletion come once in a tenth of `kept` calls, not at every call once the mirror is full."""
    extra = len(realtime.keys(path)) - kept
    if extra <= over_kept(kept):
        return
    oldest = realtime.first_by(path, order, extra)
    gone = {key: None for key, value in oldest.items() if removable(value)}
    if gone:
        realtime.update(path, gone)


def over_kept(kept: int) -> int:
    """How many more than `kept` a path may hold before its oldest go: a tenth, at least one."""
    return max(1, kept // 10)
