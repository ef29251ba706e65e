"""Crypto top-ups over HTTP on the local runtime: a wallet made here links itself by Sign-In with Ethereum, sends
ETH on anvil (a real node) to the deposit address, and the scan credits it once; a sender nobody linked is parked
and an admin credits it; refusals are problem documents that change nothing."""

from __future__ import annotations

import pytest
from eth_account import Account
from web3 import Web3

from tests.e2e.conftest import DEPOSIT_ADDRESS
from tests.e2e.server import LocalServer
from tests.evm import ETHER, anvil_missing, sign

CREDIT = 1_000_000


def link(server: LocalServer, token: str, key: object) -> dict:
    nonce = server.call("POST", "/api/v1/wallets/nonce", {"address": key.address}, token=token)  # type: ignore[attr-defined]
    assert nonce.status == 200, nonce.json
    reply = server.call("POST", "/api/v1/wallets", {"message": nonce.json["message"],
                                                   "signature": sign(nonce.json["message"], key)}, token=token)
    assert reply.status == 200, reply.json
    return reply.json


def test_a_wallet_links_lists_and_unlinks_and_refusals_are_problems(server: LocalServer) -> None:
    token, other = server.token("walt"), server.token("wanda")
    key = Account.create()
    linked = link(server, token, key)
    assert linked["address"] == key.address and linked["chainId"] == 31337 and "linkedAt" in linked
    listed = server.call("GET", "/api/v1/wallets", token=token).json
    assert [w["address"] for w in listed["wallets"]] == [key.address]
    assert listed["depositAddress"] == Web3.to_checksum_address(DEPOSIT_ADDRESS) and listed["confirmations"] == 2
    assert listed["tokens"][0]["symbol"] == "ETH" and listed["tokens"][0]["creditsPerUnit"]["credits"] == "1000"
    assert server.call("GET", "/api/v1/wallets", token=other).json["wallets"] == []
    nonce = server.call("POST", "/api/v1/wallets/nonce", {"address": key.address}, token=other).json
    taken = server.call("POST", "/api/v1/wallets", {"message": nonce["message"],
                                                   "signature": sign(nonce["message"], key)}, token=other)
    assert taken.status == 409 and taken.json["type"].endswith("/wallet-taken")
    assert taken.headers["Content-Type"] == "application/problem+json"
    nonce = server.call("POST", "/api/v1/wallets/nonce", {"address": key.address}, token=other).json
    forged = server.call("POST", "/api/v1/wallets", {"message": nonce["message"],
                                                    "signature": sign(nonce["message"], Account.create())},
                         token=other)
    assert forged.status == 422 and "signature is by" in forged.json["detail"]
    wrong_case = key.address[:2] + key.address[2:].swapcase()
    if wrong_case[2:] not in (wrong_case[2:].lower(), wrong_case[2:].upper()):
        refused = server.call("POST", "/api/v1/wallets/nonce", {"address": wrong_case}, token=token)
        assert refused.status == 422 and "checksum" in refused.json["detail"]
    assert server.call("DELETE", f"/api/v1/wallets/{key.address}", token=other).status == 404
    gone = server.call("DELETE", f"/api/v1/wallets/{key.address}", token=token)
    assert gone.status == 200 and gone.json["wallets"] == []
    assert server.call("OPTIONS", "/api/v1/wallets/nonce").headers["Allow"] in ("OPTIONS, POST", "POST, OPTIONS")


@pytest.mark.skipif(anvil_missing() is not None, reason=anvil_missing() or "")
def test_eth_sent_from_a_linked_wallet_is_credited_once_and_a_strangers_waits_for_an_admin(
        server: LocalServer) -> None:
    anvil = server.anvil  # type: ignore[attr-defined]
    w3 = anvil.w3
    token, admin = server.token("satoshi"), server.token("root", admin=True)
    server.call("GET", "/api/v1/credits/balance", token=token)
    key, stranger = Account.create(), Account.create()
    for wallet in (key, stranger):
        w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
            {"from": w3.eth.accounts[0], "to": wallet.address, "value": 2 * ETHER}))
    link(server, token, key)
    before = server.call("GET", "/api/v1/credits/balance", token=token).json["available"]["micros"]

    def pay(wallet: object, wei: int) -> str:
        signed = wallet.sign_transaction({  # type: ignore[attr-defined]
            "to": Web3.to_checksum_address(DEPOSIT_ADDRESS), "value": wei, "gas": 21_000, "chainId": 31337,
            "nonce": w3.eth.get_transaction_count(wallet.address),  # type: ignore[attr-defined]
            "maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 10**9})
        return w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))[
            "transactionHash"].to_0x_hex()

    paid = pay(key, ETHER // 2)
    strange = pay(stranger, ETHER // 5)
    anvil.mine(2)
    scans = [server.call("POST", "/api/v1/admin/deposits/scan", token=admin) for _ in range(3)]
    assert all(s.status == 200 for s in scans), scans[0].json
    assert sum(s.json["credited"] for s in scans) >= 1 and scans[-1].json["credited"] == 0
    after = server.call("GET", "/api/v1/credits/balance", token=token).json["available"]["micros"]
    assert after - before == 500 * CREDIT
    mine = server.call("GET", "/api/v1/deposits", token=token).json["deposits"]
    assert [(d["txHash"], d["status"], d["credits"]["credits"], d["amount"]) for d in mine] == [
        (paid, "credited", "500", str(ETHER // 2))]
    listed = server.call("GET", "/api/v1/admin/deposits?status=parked", token=admin).json
    parked = listed["deposits"]
    assert [d["txHash"] for d in parked] == [strange] and listed["scanning"] is True
    assert server.call("POST", f"/api/v1/admin/deposits/{parked[0]['id']}/credit", {"uid": "satoshi"},
                       token=token).status == 403
    credited = server.call("POST", f"/api/v1/admin/deposits/{parked[0]['id']}/credit", {"uid": "satoshi"},
                           token=admin)
    assert credited.status == 200 and credited.json["status"] == "credited" and credited.json["reviewedBy"] == "root"
    again = server.call("POST", f"/api/v1/admin/deposits/{parked[0]['id']}/refund", {"note": "sent back"},
                        token=admin)
    assert again.status == 409 and again.json["type"].endswith("/deposit-reviewed")
    final = server.call("GET", "/api/v1/credits/balance", token=token).json["available"]["micros"]
    assert final - before == 700 * CREDIT
