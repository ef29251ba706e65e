"""Bodies of what the web app asks the server about itself, and the local runtime's dev sign-in (web_routes)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ....domain.accounts import UID_RULE
from .common import Out


class WebConfigOut(Out):
    runtime: str
    devSignIn: bool = Field(description="the local runtime's dev sign-in is offered to this caller")
    realtime: str = Field(description="the base URL of the Realtime Database REST protocol")
    firebase: dict[str, str] | None = Field(description="the Firebase web config, where the server knows it")
    authEmulator: str | None = Field(description="host:port of the Auth emulator the tokens come from")


class DevSignInIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    uid: str = Field(min_length=1, max_length=128, description=f"a user id: {UID_RULE}")


class DevSignInOut(Out):
    uid: str
    token: str = Field(description="a dev token (an hour's), for Authorization: Bearer and ?auth=")
    expiresIn: int
