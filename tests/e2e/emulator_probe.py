"""Run inside `firebase emulators:exec --only auth,functions` (arguments: the file to write, the functions emulator's
port): calls `api` and `claimWelcomeBonus` through the
functions emulator with an ID token from the Auth emulator, and writes what came back to the file named."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

PROJECT = "demo-creditflow"


def call(url: str, body: object = None, token: str | None = None) -> tuple[int, object]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def main() -> None:
    auth = os.environ["FIREBASE_AUTH_EMULATOR_HOST"]
    functions = f"http://127.0.0.1:{sys.argv[2]}/{PROJECT}/us-central1"  # the port the test gave the emulator
    _, user = call(f"http://{auth}/identitytoolkit.googleapis.com/v1/accounts:signUp?key=fake-key",
                   {"email": "emu@example.com", "password": "secret-123", "returnSecureToken": True})
    token = user["idToken"]  # type: ignore[index]
    results = {
        "me": call(f"{functions}/api/api/v1/me", token=token),
        "anonymous": call(f"{functions}/api/api/v1/me"),
        "welcome": call(f"{functions}/claimWelcomeBonus", {"data": {"deviceFingerprint": "emulator-device"}},
                        token=token),
        "again": call(f"{functions}/claimWelcomeBonus", {"data": {}}, token=token),
        "balance": call(f"{functions}/api/api/v1/credits/balance", token=token),
        "uid": user["localId"],  # type: ignore[index]
    }
    with open(sys.argv[1], "w") as out:  # a file: the emulator interleaves its own output with stdout
        json.dump(results, out)


if __name__ == "__main__":
    main()
