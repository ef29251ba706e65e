"""The model catalog: /api/v1/models for everyone, and the admins' overrides under /api/v1/admin/models."""

from __future__ import annotations

import re
from typing import Any

from pydantic.alias_generators import to_camel

from ...bootstrap import Platform
from ...domain.callers import Caller
from ...domain.catalog import InvalidOverride
from . import schemas as s
from .api import Routes

V1 = "/api/v1"

routes = Routes()


def model_out(m: Any) -> s.ModelOut:
    return s.ModelOut(id=m.id, label=m.label, provider=m.provider, demo=m.demo, capabilities=sorted(m.capabilities),
                      input_per_million=s.Money.of(m.input_per_million),
                      output_per_million=s.Money.of(m.output_per_million), context_window=m.context_window,
                      max_output=m.max_output, image_prices=[s.ImagePriceOut(size=size, steps=steps,
                                                                             price=s.Money.of(micros))
                                                             for size, steps, micros in m.image_prices])


def admin_models(platform: Platform) -> s.AdminModelsOut:
    catalog = platform.catalog
    return s.AdminModelsOut(models=[s.AdminModelOut(**model_out(m).model_dump(), enabled=m.enabled,
                                                    source=catalog.source(m.id)) for m in catalog.all()])


@routes.route("GET", f"{V1}/models", summary="The models on offer, with prices (demo models say so)",
              response=s.ModelsOut)
def models(platform: Platform, caller: Caller) -> s.ModelsOut:
    return s.ModelsOut(models=[model_out(m) for m in platform.chat.catalog.models()])


@routes.route("GET", f"{V1}/admin/models", summary="Every model, disabled ones too, and where each comes from",
              auth="admin", response=s.AdminModelsOut)
def list_admin_models(platform: Platform, caller: Caller) -> s.AdminModelsOut:
    return admin_models(platform)


@routes.route("PUT", f"{V1}/admin/models", summary="Override a packaged model's fields, or add a model (priced)",
              auth="admin", body=s.ModelOverrideIn, response=s.AdminModelsOut, errors=(409,))
def override_model(platform: Platform, caller: Caller, body: s.ModelOverrideIn) -> s.AdminModelsOut:
    try:
        platform.catalog.put(body.model, body.model_dump(exclude_none=True, exclude={"model"}))
    except InvalidOverride as refused:  # the catalog names its fields as it keeps them: said as they are sent
        raise InvalidOverride(re.sub(r"'([a-z]+(?:_[a-z]+)+)'", lambda m: repr(to_camel(m[1])), refused.detail)
                              ) from refused
    return admin_models(platform)


@routes.route("DELETE", f"{V1}/admin/models", summary="Drop a model's override (the packaged record applies again)",
              auth="admin", query=s.ModelQuery, response=s.AdminModelsOut)
def drop_model_override(platform: Platform, caller: Caller, query: s.ModelQuery) -> s.AdminModelsOut:
    platform.catalog.remove(query.model)
    return admin_models(platform)


@routes.route("GET", f"{V1}/admin/models/health", summary="Each model's circuit breaker as this instance sees it: "
              "state, error rate and median latency (admins)", auth="admin", response=s.ModelsHealthOut)
def models_health(platform: Platform, caller: Caller) -> s.ModelsHealthOut:
    chat = platform.chat
    report = chat.health.report(chat.now())
    return s.ModelsHealthOut(models={model: s.ModelHealthOut(state=h.state, errorRate=h.error_rate, p50Ms=h.p50_ms)
                                     for model, h in report.items()})
