"""HTTP statuses live in the HTTP layer: the domain's refusals carry none, and the table gives each its own."""

from __future__ import annotations

import importlib
import pkgutil

import creditflow.domain
from creditflow.domain.catalog import UnknownModel
from creditflow.domain.errors import Contended, HoldInUse, InsufficientFunds, InvalidAmount, LedgerError
from creditflow.entrypoints.http.statuses import status_of


def _refusals() -> list[type[LedgerError]]:
    for module in pkgutil.iter_modules(creditflow.domain.__path__):
        importlib.import_module(f"creditflow.domain.{module.name}")
    found, todo = [], [LedgerError]
    while todo:
        kind = todo.pop()
        found.append(kind)
        todo.extend(kind.__subclasses__())
    return [kind for kind in found if kind.__module__.startswith("creditflow.domain.")]


def test_no_refusal_of_the_domain_says_an_http_status() -> None:
    assert [kind.__name__ for kind in _refusals() if "status" in vars(kind)] == []


def test_each_refusal_has_its_status_and_a_subclass_its_ancestors() -> None:
    assert status_of(InsufficientFunds("x")) == 402 and status_of(HoldInUse("x")) == 409
    assert status_of(UnknownModel("x")) == 404 and status_of(Contended("x")) == 503  # as ServerBusy
    assert status_of(InvalidAmount("x")) == 400  # the caller's to fix
    assert all(400 <= status_of(kind("x")) < 600 for kind in _refusals())
