"""Chains for the crypto tests: eth-tester with py-evm in this process (fast), and anvil, a real node over HTTP
(npm @foundry-rs/anvil, installed by `make test` into tools/); the ERC-20 of tests/chain, compiled offline with
npm's solc (tests/chain/compile.js rebuilds it); and a SIWE signer for wallets made here."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from web3 import Web3
from web3.contract import Contract

from tests.firestore_emulator import free_port
from tests.servers import stop_process, wait_until_up

ROOT = Path(__file__).resolve().parents[1]
ARTIFACT = json.loads((ROOT / "tests/chain/TestToken.json").read_text())
ANVIL = ROOT / "tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
ETHER = 10**18


def in_process_chain() -> Web3:
    """An in-process chain (eth-tester, py-evm): ten funded accounts, a block per transaction."""
    from web3 import EthereumTesterProvider

    return Web3(EthereumTesterProvider())


class Anvil:
    """One anvil node on a free loopback port (chain id 31337, ten funded accounts, a block per transaction)."""

    def __init__(self, chain_id: int = 31337) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([str(ANVIL), "--host", "127.0.0.1", "--port", str(self.port), "--chain-id",
                                         str(chain_id), "--silent"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        wait_until_up(self.process, lambda: self.rpc("eth_blockNumber") is not None, "anvil", timeout=15)
        self.w3 = Web3(Web3.HTTPProvider(self.url))

    def rpc(self, method: str, *params: object) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
        request = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["result"]

    def rpc_batch(self, calls: list[tuple[str, list[object]]]) -> list[Any]:
        """Several calls in one JSON-RPC batch (one HTTP request)."""
        body = json.dumps([{"jsonrpc": "2.0", "id": n, "method": method, "params": params}
                           for n, (method, params) in enumerate(calls)]).encode()
        request = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answers = sorted(json.loads(response.read()), key=lambda a: a["id"])
        failed = [a["error"] for a in answers if "error" in a]
        if failed:
            raise RuntimeError(failed[:3])
        return [a["result"] for a in answers]

    def mine(self, blocks: int) -> None:
        self.rpc("anvil_mine", hex(blocks))

    def stop(self) -> None:
        stop_process(self.process)


def anvil_missing() -> str | None:
    """Why anvil cannot run here, or None."""
    if not ANVIL.is_file():
        return f"anvil is not installed at {ANVIL.relative_to(ROOT)} (make test installs tools/ with npm ci)"
    return None


def mine(w3: Web3, blocks: int) -> None:
    if "Tester" in type(w3.provider).__name__:
        w3.testing.mine(blocks)  # type: ignore[attr-defined]
    else:
        w3.provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[arg-type]


def deploy_token(w3: Web3, deployer: str, symbol: str = "TST", decimals: int = 6,
                 supply: int = 10**30) -> Contract:
    factory = w3.eth.contract(abi=ARTIFACT["abi"], bytecode=ARTIFACT["bytecode"])
    receipt = w3.eth.wait_for_transaction_receipt(
        factory.constructor(f"Test {symbol}", symbol, decimals, supply).transact({"from": deployer}))
    return w3.eth.contract(address=receipt["contractAddress"], abi=ARTIFACT["abi"])


def send_eth(w3: Web3, sender: str, to: str, wei: int) -> Any:
    return w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": sender, "to": to, "value": wei}))


def send_token(token: Contract, sender: str, to: str, amount: int) -> Any:
    return token.w3.eth.wait_for_transaction_receipt(token.functions.transfer(to, amount).transact({"from": sender}))


def sign(message: str, key: Any) -> str:
    """A wallet's personal_sign of `message`, as 0x and hex."""
    return "0x" + Account.sign_message(encode_defunct(text=message), private_key=key.key).signature.hex()
