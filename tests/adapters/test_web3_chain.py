"""The chain reader against anvil, a real node over HTTP JSON-RPC (batched requests, block-level log indexes,
several transfers in one block or one transaction), and the scanner on it: deposits credited once, reorganisations
before confirmation and during a scan credit nothing, and a deeper one that moves a credited transfer credits it
once. Also: the committed ERC-20 artifact is what its source compiles to."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest
from web3 import Web3

from creditflow.adapters.payments.web3_chain import Web3Chain
from creditflow.bootstrap import Platform, build
from creditflow.config import Settings
from creditflow.domain.crypto import NATIVE, Transfer, Wallet
from tests.conftest import CREDIT, SteppedClock
from tests.evm import ETHER, ROOT, Anvil, anvil_missing, deploy_token, send_eth, send_token

pytestmark = pytest.mark.skipif(anvil_missing() is not None, reason=anvil_missing() or "")
DEPOSITS = Web3.to_checksum_address("0x" + "d0" * 20)


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    node = Anvil()
    yield node
    node.stop()


def platform_on(anvil: Anvil, data: Path, token: str, confirmations: int = 2) -> Platform:
    settings = Settings.from_env(runtime="local", data_dir=data, crypto_rpc_url=anvil.url, crypto_chain_id=31337,
                                 crypto_deposit_address=DEPOSITS, crypto_credits_per_eth=1000 * CREDIT,
                                 crypto_tokens=(("TST", token, 6, CREDIT),), crypto_confirmations=confirmations)
    return build(settings, clock=SteppedClock())


def test_transfers_of_eth_and_tokens_in_one_block_are_read_whole(anvil: Anvil) -> None:
    w3 = anvil.w3
    owner, alice, bob = w3.eth.accounts[:3]
    token = deploy_token(w3, owner)
    send_token(token, owner, alice, 10**9)
    send_token(token, owner, bob, 10**9)
    anvil.rpc("evm_setAutomine", False)
    hashes = [token.functions.transfer(DEPOSITS, 5).transact({"from": alice}),
              token.functions.transfer(DEPOSITS, 7).transact({"from": bob}),
              w3.eth.send_transaction({"from": owner, "to": DEPOSITS, "value": ETHER})]
    anvil.rpc("evm_mine")
    anvil.rpc("evm_setAutomine", True)
    block = w3.eth.get_transaction_receipt(hashes[0])["blockNumber"]
    chain = Web3Chain(Web3(Web3.HTTPProvider(anvil.url)))
    found = chain.transfers(1, chain.head(), DEPOSITS, [token.address])
    assert chain._batches, "anvil takes JSON-RPC batches"
    assert {(t.sender, t.contract, t.amount) for t in found} == {(alice, token.address, 5), (bob, token.address, 7),
                                                                 (owner, None, ETHER)}
    assert {t.block_number for t in found} == {block}
    assert len({t.id for t in found}) == 3 and [t.log_index for t in found if t.contract is None] == [NATIVE]
    assert all(t.block_hash == chain.block_hash(block) for t in found)
    assert chain.block_hash(chain.head() + 5) is None
    assert chain.decimals(token.address) == 6 and chain.chain_id() == 31337


def test_the_scanner_on_a_real_node_credits_once_and_skips_a_reorganised_deposit(anvil: Anvil,
                                                                                 tmp_path: Path) -> None:
    w3 = anvil.w3
    owner, alice = w3.eth.accounts[:2]
    token = deploy_token(w3, owner)
    send_token(token, owner, alice, 10**9)
    platform = platform_on(anvil, tmp_path, token.address)
    platform.deposits.wallets.link(Wallet(alice, "alice", 31337, "t"))
    platform.credits.open_account("alice")
    send_eth(w3, alice, DEPOSITS, ETHER // 2)
    send_token(token, alice, DEPOSITS, 3_000_000)
    snapshot = anvil.rpc("evm_snapshot")
    send_eth(w3, alice, DEPOSITS, ETHER)  # about to be reorganised away
    assert platform.deposits.scan().credited == 2  # the last ETH has one confirmation of the two it needs
    anvil.rpc("evm_revert", snapshot)
    anvil.mine(3)
    for _ in range(5):
        platform.deposits.scan()
    assert platform.credits.balance("alice").available == 503 * CREDIT
    assert sorted(d.amount for d in platform.deposits.mine("alice")) == [3_000_000, ETHER // 2]


class ReorgOnFirstCheck:
    """A real reorganisation of the node, made just after the scanner read the transfers and before it checks
    their blocks: the race the canonical check is there for."""

    def __init__(self, chain: Web3Chain, anvil: Anvil, snapshot: str) -> None:
        self.chain, self.anvil, self.snapshot = chain, anvil, snapshot
        self.done = False

    def __getattr__(self, name: str) -> object:
        return getattr(self.chain, name)

    def transfers(self, first: int, last: int, to: str, contracts: Collection[str]) -> list[Transfer]:
        return self.chain.transfers(first, last, to, contracts)

    def block_hash(self, number: int) -> str | None:
        if not self.done:
            self.done = True
            self.anvil.rpc("evm_revert", self.snapshot)
            self.anvil.mine(10)
        return self.chain.block_hash(number)


def test_a_block_reorganised_while_it_is_read_is_read_again_and_not_credited(anvil: Anvil, tmp_path: Path) -> None:
    w3 = anvil.w3
    owner, alice = w3.eth.accounts[:2]
    token = deploy_token(w3, owner)
    platform = platform_on(anvil, tmp_path, token.address)
    platform.deposits.wallets.link(Wallet(alice, "alice", 31337, "t"))
    platform.credits.open_account("alice")
    snapshot = anvil.rpc("evm_snapshot")
    send_eth(w3, alice, DEPOSITS, ETHER)
    anvil.mine(3)
    real = platform.deposits.chain
    assert isinstance(real, Web3Chain)
    platform.deposits.chain = ReorgOnFirstCheck(real, anvil, snapshot)  # type: ignore[assignment]
    report = platform.deposits.scan()
    assert report.reorganised and report.credited == 0
    assert platform.deposits.store.scanned(31337) is None or report.last < report.first
    platform.deposits.chain = real
    assert platform.deposits.scan().credited == 0  # read again: the transfer is gone
    assert platform.credits.balance("alice").available == 0


@pytest.mark.skipif(shutil.which("node") is None or not (ROOT / "tools/node_modules/solc").is_dir(),
                    reason="node or npm's solc (tools/node_modules) is missing")
def test_the_committed_token_artifact_is_what_its_source_compiles_to(tmp_path: Path) -> None:
    out = tmp_path / "TestToken.json"
    subprocess.run(["node", str(ROOT / "tests/chain/compile.js"), str(out)], check=True, capture_output=True)
    built, committed = json.loads(out.read_text()), json.loads((ROOT / "tests/chain/TestToken.json").read_text())
    assert built == committed


def test_a_token_deposit_a_deep_reorganisation_moves_behind_another_is_credited_once(anvil: Anvil,
                                                                                    tmp_path: Path) -> None:
    """A reorganisation deeper than the confirmations (past what the rules guard against, but chains have had them)
    takes back the block of a token deposit that was credited, and the same signed transaction lands in a later
    block, behind another transfer to the deposit address: its log index there is not the one it had. It is the
    same deposit, and it is credited once; the other transfer is a deposit of its own."""
    w3 = anvil.w3
    owner, alice, bob = w3.eth.accounts[:3]
    token = deploy_token(w3, owner)
    send_token(token, owner, alice, 10**9)
    send_token(token, owner, bob, 10**9)
    platform = platform_on(anvil, tmp_path, token.address, confirmations=1)
    platform.deposits.wallets.link(Wallet(alice, "alice", 31337, "t"))
    platform.deposits.wallets.link(Wallet(bob, "bob", 31337, "t"))
    snapshot = anvil.rpc("evm_snapshot")
    sent = send_token(token, alice, DEPOSITS, 3_000_000)
    raw = anvil.rpc("eth_getRawTransactionByHash", "0x" + bytes(sent["transactionHash"]).hex())
    assert platform.deposits.scan().credited == 1
    [first] = platform.deposits.mine("alice")
    anvil.rpc("evm_revert", snapshot)
    anvil.mine(3)  # past every block the scanner read: it reads where the transaction lands next
    anvil.rpc("evm_setAutomine", False)
    # bob's first in the block: it pays more for its place than alice's transaction offered
    token.functions.transfer(DEPOSITS, 2_000_000).transact({"from": bob, "maxPriorityFeePerGas": 10**11,
                                                            "maxFeePerGas": 10**12})
    anvil.rpc("eth_sendRawTransaction", raw)
    anvil.rpc("evm_mine")
    anvil.rpc("evm_setAutomine", True)
    [again] = [t for t in platform.deposits.chain.transfers(  # type: ignore[union-attr]
        1, anvil.w3.eth.block_number, DEPOSITS, [token.address]) if t.sender == alice]
    assert again.tx_hash == first.tx_hash and again.log_index != first.log_index  # moved within its new block
    report = platform.deposits.scan()
    assert (report.credited, report.seen) == (1, 1)  # bob's; alice's is the one credited before
    assert platform.credits.balance("alice").available == 3 * CREDIT
    assert platform.credits.balance("bob").available == 2 * CREDIT
    assert [d.id for d in platform.deposits.mine("alice")] == [first.id]


def test_two_transfers_of_one_transaction_are_two_deposits(anvil: Anvil, tmp_path: Path) -> None:
    """A batch sender's transaction sends the deposit address two amounts (and someone else a third): two deposits,
    each credited once, told apart by their places in the transaction, the first 0."""
    w3 = anvil.w3
    owner, alice, carol = w3.eth.accounts[:3]
    token = deploy_token(w3, owner)
    send_token(token, owner, alice, 10**9)
    platform = platform_on(anvil, tmp_path, token.address, confirmations=1)
    platform.deposits.wallets.link(Wallet(alice, "alice", 31337, "t"))
    token.functions.transferEach([DEPOSITS, carol, DEPOSITS], [1_000_000, 5, 2_000_000]).transact({"from": alice})
    assert platform.deposits.scan().credited == 2
    assert platform.deposits.scan().credited == 0
    deposits = sorted(platform.deposits.mine("alice"), key=lambda d: d.log_index)
    assert [d.amount for d in deposits] == [1_000_000, 2_000_000]
    assert [d.id.rsplit(":", 1)[1] for d in deposits] == ["0", "1"]
    assert platform.credits.balance("alice").available == 3 * CREDIT
