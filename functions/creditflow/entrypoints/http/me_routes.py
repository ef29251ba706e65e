"""The caller under /api/v1/me: who they are, and their model preferences; and the service's /api/v1/health."""

from __future__ import annotations

from ...bootstrap import Platform
from ...domain.callers import Caller
from ...domain.money import parse_credits
from ...domain.preferences import Preferences
from . import schemas as s
from .api import Routes

V1 = "/api/v1"

routes = Routes()


def preferences_out(prefs: Preferences) -> s.PreferencesOut:
    cap = prefs.max_credits_per_request
    return s.PreferencesOut(preferredModel=prefs.preferred_model, costSaving=prefs.cost_saving,
                            maxCreditsPerRequest=s.Money.of(cap) if cap is not None else None)


@routes.route("GET", f"{V1}/health", summary="Liveness and the log size", auth="none", response=s.Health)
def health(platform: Platform) -> s.Health:
    refused = platform.integrity.refused
    return s.Health(status="degraded" if refused else "ok", runtime=platform.settings.runtime,
                    tree_size=platform.store.tree_size(), problem=refused)


@routes.route("GET", f"{V1}/me", summary="The caller and their account", response=s.Me)
def me(platform: Platform, caller: Caller) -> s.Me:
    account = platform.credits.open_account(caller.uid)
    return s.Me(uid=caller.uid, email=caller.email, email_verified=caller.email_verified, admin=caller.admin,
                account=account.id, status=account.status)


@routes.route("GET", f"{V1}/me/preferences", summary="The caller's model preferences", response=s.PreferencesOut)
def get_preferences(platform: Platform, caller: Caller) -> s.PreferencesOut:
    return preferences_out(platform.chat.preferences_of(caller.uid))


@routes.route("PUT", f"{V1}/me/preferences", summary="Set the preferred model, a per-request cap, cost-saving",
              body=s.PreferencesIn, response=s.PreferencesOut)
def put_preferences(platform: Platform, caller: Caller, body: s.PreferencesIn) -> s.PreferencesOut:
    if body.preferredModel is not None:
        platform.chat.catalog.get(body.preferredModel, "chat")  # refuses an unknown model
    prefs = Preferences(preferred_model=body.preferredModel, cost_saving=body.costSaving,
                        max_credits_per_request=parse_credits(body.maxCreditsPerRequest)
                        if body.maxCreditsPerRequest else None)
    platform.chat.preferences.put(caller.uid, prefs)  # type: ignore[union-attr]
    return preferences_out(prefs)
