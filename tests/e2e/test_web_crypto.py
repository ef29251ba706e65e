"""Crypto top-ups in the web app, in Debian's Chromium against a local runtime reading anvil: the page links a
wallet by Sign-In with Ethereum through an injected EIP-1193 wallet (its signatures made by a real key in this
test), shows the deposit address with its QR code, a transfer on its way with its confirmations, and the credited
deposit; the page is accessible and fits 360 px."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from web3 import Web3

from tests.e2e.server import LocalServer
from tests.e2e.test_web import browser, sign_in  # noqa: F401  (a fixture)
from tests.e2e.test_web_a11y import axe_serious, keyboard_reaches_every_action, settle
from tests.evm import ETHER, Anvil, anvil_missing

pytestmark = pytest.mark.skipif(anvil_missing() is not None, reason=anvil_missing() or "")
DEPOSITS = Web3.to_checksum_address("0x" + "c0" * 20)
WALLET = """
window.ethereum = {
  isTestWallet: true,
  request: async ({ method, params }) => {
    if (method === "eth_requestAccounts") return [await window.testWalletAddress()];
    if (method === "personal_sign") return await window.testWalletSign(params[0], params[1]);
    throw new Error(`unsupported ${method}`);
  },
};
"""


@pytest.fixture(scope="module")
def chain() -> Iterator[Anvil]:
    node = Anvil()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def shop(chain: Anvil, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    running = LocalServer(tmp_path_factory.mktemp("crypto-web") / "data", RATE_LIMIT_PER_MINUTE="100000",
                          CRYPTO_RPC_URL=chain.url, CRYPTO_CHAIN_ID="31337", CRYPTO_DEPOSIT_ADDRESS=DEPOSITS,
                          CRYPTO_CREDITS_PER_ETH="1000", CRYPTO_CONFIRMATIONS="3", CRYPTO_SCAN_SECONDS="3600")
    yield running
    running.stop()


def with_wallet(context: Any, key: Any, signed: list[str]) -> Any:
    """A page whose window.ethereum signs with `key` (personal_sign of the hex-encoded UTF-8 message)."""
    page = context.new_page()
    page.expose_function("testWalletAddress", lambda: key.address)

    def sign(data: str, address: str) -> str:
        assert address.lower() == key.address.lower()
        message = bytes.fromhex(data.removeprefix("0x")).decode()
        signed.append(message)
        return "0x" + Account.sign_message(encode_defunct(text=message), private_key=key.key).signature.hex()

    page.expose_function("testWalletSign", sign)
    page.add_init_script(WALLET)
    return page


def test_a_wallet_links_and_a_deposit_shows_its_way_to_credits(browser: Any, shop: LocalServer,  # noqa: F811
                                                               chain: Anvil) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 900})
    context.set_default_timeout(15000)
    try:
        key, signed = Account.create(), []
        page = with_wallet(context, key, signed)
        sign_in(page, shop, "vic", "payments")
        page.get_by_role("heading", name="Pay with crypto").wait_for()
        page.get_by_text("No wallet linked yet.").wait_for()
        page.get_by_role("button", name="Link a wallet").click()
        page.get_by_test_id("wallet").wait_for()
        assert key.address in page.get_by_test_id("wallet").inner_text()
        here = shop.url.removeprefix("http://")  # the message names the app where it is served, not :8080
        assert len(signed) == 1 and signed[0].startswith(f"{here} wants you to sign in"), signed
        assert page.get_by_test_id("deposit-address").inner_text() == DEPOSITS
        qr = page.get_by_test_id("deposit-qr")
        assert DEPOSITS in (qr.get_attribute("aria-label") or "")
        assert len(qr.locator("path").get_attribute("d") or "") > 500  # drawn, not empty
        w3 = chain.w3
        w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
            {"from": w3.eth.accounts[0], "to": key.address, "value": ETHER}))
        sent = key.sign_transaction({"to": DEPOSITS, "value": ETHER // 4, "gas": 21_000, "chainId": 31337,
                                     "nonce": 0, "maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 10**9})
        w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(sent.raw_transaction))
        page.reload()
        pending = page.get_by_test_id("pending-deposit")
        pending.wait_for()
        assert re.search(r"0\.25 ETH: 1 of 3 confirmations", pending.inner_text()), pending.inner_text()
        settle(page)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
        assert axe_serious(page) == []
        keyboard_reaches_every_action(page, "payments with crypto at 360 px")
        chain.mine(2)
        admin = shop.token("root", admin=True)
        assert shop.call("POST", "/api/v1/admin/deposits/scan", token=admin).json["credited"] == 1
        page.reload()
        row = page.get_by_test_id("deposit-row")
        row.wait_for()
        assert "0.25 ETH" in row.inner_text() and "credited" in row.inner_text() and "250 cr" in row.inner_text()
        page.get_by_text("Nothing on its way.").wait_for()
        page.get_by_role("button", name=f"Unlink wallet {key.address}").click()
        page.get_by_text("No wallet linked yet.").wait_for()
    finally:
        context.close()


def test_without_a_browser_wallet_the_page_says_what_to_do(browser: Any, shop: LocalServer) -> None:  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15000)
    try:
        page = context.new_page()
        sign_in(page, shop, "wes", "payments")
        page.get_by_role("button", name="Link a wallet").click()
        page.get_by_role("alert").get_by_text(re.compile("no browser wallet was found")).wait_for()
    finally:
        context.close()


def test_the_console_shows_crypto_revenue_and_resolves_a_parked_deposit(browser: Any, shop: LocalServer,  # noqa: F811
                                                                         chain: Anvil) -> None:
    from tests.e2e.test_web import use_token

    w3 = chain.w3
    stranger = w3.eth.accounts[5]  # a wallet nobody linked
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": stranger, "to": DEPOSITS,
                                                                 "value": ETHER // 10}))
    chain.mine(3)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15000)
    try:
        page = context.new_page()
        use_token(page, shop, shop.token("root", admin=True), "admin.html")
        page.get_by_text("Signed in as root (admin)").wait_for()
        page.goto(f"{shop.url}/admin.html#/payments")
        page.get_by_role("button", name="Scan the chain now").click()
        # it reads each block not scanned yet, one call each, after any scan running: once >15 s on a loaded machine
        page.get_by_role("status").get_by_text(re.compile("parked")).wait_for(timeout=60000)
        parked = page.get_by_test_id("parked-deposit")
        parked.wait_for()
        assert "0.1 ETH" in parked.inner_text() and stranger in parked.inner_text()
        assert re.search(r"ETH\s+\d+\s+\d+\s+[\d.,]+ cr\s+1", page.get_by_test_id("crypto-totals").inner_text())
        parked.get_by_label("Credit to user").fill("zoe")
        parked.get_by_role("button", name="Credit").click()
        page.get_by_text(re.compile("^Credited .* to zoe")).wait_for()
        page.get_by_text("Nothing waits for review.").wait_for()
        # the revenue read again by itself: the credit is in it now (it stayed as it was until Show was pressed)
        page.get_by_test_id("revenue-crypto").get_by_text(re.compile(r"^[1-9][\d.]* cr")).wait_for()
        page.get_by_test_id("chart").wait_for()
        balance = shop.call("GET", "/api/v1/credits/balance", token=shop.token("zoe")).json
        assert balance["available"]["credits"] == "100"
    finally:
        context.close()
