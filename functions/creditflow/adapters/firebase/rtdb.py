"""The realtime mirror on Firebase Realtime Database (firebase_admin.db)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class RealtimeDatabase:
    def __init__(self, url: str, app: Any = None) -> None:
        import firebase_admin
        from firebase_admin import db

        if app is None and not firebase_admin._apps:
            firebase_admin.initialize_app(options={"databaseURL": url})
        self._db = db
        self._url = url  # every reference names it: the app's databaseURL may be another database's
        self._app = app

    def _ref(self, path: str) -> Any:
        return self._db.reference(path, app=self._app, url=self._url)

    def set(self, path: str, value: object) -> None:
        if value is None:  # firebase-admin refuses to send null ("Value must not be None"); a delete is the same
            self._ref(path).delete()
        else:
            self._ref(path).set(value)

    def update(self, path: str, children: Mapping[str, object]) -> None:
        self._ref(path).update(dict(children))

    def set_if_newer(self, path: str, value: dict, version: int) -> bool:
        written = False

        def update(current: Any) -> Any:
            nonlocal written
            if isinstance(current, dict) and isinstance(current.get("version"), int) and (
                    current["version"] >= version):
                written = False
                return current
            written = True
            return value

        self._ref(path).transaction(update)
        return written

    def set_many_if_newer(self, values: dict[str, tuple[dict, int]]) -> frozenset[str]:
        """A transaction a path: Realtime Database has no conditional multi-path write."""
        return frozenset(path for path, (value, version) in values.items() if self.set_if_newer(path, value, version))

    def get(self, path: str) -> Any:
        return self._ref(path).get()

    def keys(self, path: str) -> list[str]:
        children = self._ref(path).get(shallow=True)
        return list(children) if isinstance(children, dict) else []

    def first_by(self, path: str, child: str, count: int) -> dict[str, Any]:
        found = self._ref(path).order_by_child(child).limit_to_first(count).get()
        return dict(found) if isinstance(found, dict) else {}
