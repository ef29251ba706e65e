"""Crypto deposits on an in-process chain (eth-tester, py-evm): ETH and an ERC-20 compiled with solc, sent from
linked and unlinked wallets, credited once after their confirmations, however often the same blocks are scanned;
parked deposits reviewed by an admin; the configuration checked against the chain. Real transactions, real logs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3

from creditflow.adapters.local.deposits import SqliteDeposits
from creditflow.adapters.payments.web3_chain import Web3Chain
from creditflow.bootstrap import Platform, build
from creditflow.config import Settings
from creditflow.domain.crypto import (
    CREDITED,
    DUST,
    PARKED,
    REFUNDED,
    ChainMismatch,
    CryptoNotConfigured,
    DepositReviewed,
    UnknownDeposit,
    Wallet,
)
from tests.conftest import CREDIT, SteppedClock, dying_after
from tests.evm import ETHER, deploy_token, in_process_chain, mine, send_eth, send_token

CONFIRMATIONS = 3
PER_ETH = 1000 * CREDIT  # 1 ETH buys 1000 credits
PER_TOKEN = 2 * CREDIT  # 1 TST (6 decimals) buys 2 credits


@pytest.fixture(scope="module")
def chain() -> Iterator[dict[str, Any]]:
    """One chain for the module: the deployer holds the tokens; users' wallets are its funded accounts."""
    w3 = in_process_chain()
    accounts = w3.eth.accounts
    token = deploy_token(w3, accounts[0], "TST", 6)
    yield {"w3": w3, "token": token, "accounts": accounts}


class Scene:
    def __init__(self, platform: Platform, chain: dict[str, Any], deposit_to: str) -> None:
        self.platform = platform
        self.w3: Web3 = chain["w3"]
        self.token = chain["token"]
        self.accounts: list[str] = chain["accounts"]
        self.deposit_to = deposit_to

    def link(self, uid: str, address: str) -> None:
        self.platform.credits.open_account(uid)
        self.platform.deposits.wallets.link(Wallet(address, uid, self.platform.settings.crypto_chain_id or 0, "t"))

    def fund(self, wallet: str, tokens: int) -> None:
        send_token(self.token, self.accounts[0], wallet, tokens)

    def balance(self, uid: str) -> int:
        return self.platform.credits.balance(uid).available

    def lots(self, uid: str) -> list[Any]:
        return self.platform.store.lots_of(f"user:{uid}")


_deposit_addresses = iter(range(0x10000, 0x20000))  # clear of the precompiles (0x01-0x11)


def make_scene(tmp: Path, chain: dict[str, Any], clock: SteppedClock, **overrides: object) -> Scene:
    """A platform on this chain, with a deposit address of its own (so blocks other tests filled hold nothing for
    it) and scanning from the current head."""
    w3: Web3 = chain["w3"]
    deposit_to = Web3.to_checksum_address(f"0x{next(_deposit_addresses):040x}")
    values: dict[str, object] = {
        "crypto_chain_id": w3.eth.chain_id, "crypto_deposit_address": deposit_to, "crypto_credits_per_eth": PER_ETH,
        "crypto_tokens": (("TST", chain["token"].address, 6, PER_TOKEN),), "crypto_confirmations": CONFIRMATIONS,
        "crypto_start_block": w3.eth.block_number + 1, "crypto_scan_batch": 7}
    values.update(overrides)
    platform = build(Settings.from_env(runtime="local", data_dir=tmp, **values), clock=clock, chain=Web3Chain(w3))
    return Scene(platform, chain, deposit_to)


@pytest.fixture
def scene(tmp_path: Path, chain: dict[str, Any], clock: SteppedClock) -> Iterator[Scene]:
    made = make_scene(tmp_path / "data", chain, clock)
    yield made
    made.platform.store.close()  # type: ignore[attr-defined]


def test_eth_and_token_deposits_are_credited_once_after_their_confirmations(scene: Scene) -> None:
    alice = scene.accounts[1]
    scene.link("alice", alice)
    scene.fund(alice, 5_000_000)
    send_eth(scene.w3, alice, scene.deposit_to, ETHER // 4)  # 250 credits
    send_token(scene.token, alice, scene.deposit_to, 1_500_000)  # 1.5 TST: 3 credits
    first = scene.platform.deposits.scan()
    assert scene.balance("alice") == 0, "credited before its confirmations"
    assert first.credited == 0 and first.last == scene.w3.eth.block_number - CONFIRMATIONS + 1
    mine(scene.w3, CONFIRMATIONS)
    report = scene.platform.deposits.scan()
    assert (report.credited, report.parked) == (2, 0)
    assert scene.balance("alice") == 253 * CREDIT
    for _ in range(10):
        again = scene.platform.deposits.scan()
        assert again.credited == 0
    assert scene.balance("alice") == 253 * CREDIT
    mine_ = scene.platform.deposits.mine("alice")
    assert {d.token: d.credits for d in mine_} == {"ETH": 250 * CREDIT, "TST": 3 * CREDIT}
    assert all(d.status == CREDITED and d.lot for d in mine_)
    eth = next(d for d in mine_ if d.token == "ETH")
    assert eth.id.endswith(":native") and eth.amount == ETHER // 4 and eth.sender == alice
    lots = scene.lots("alice")
    assert sorted((lot.kind, lot.source) for lot in lots) == [("paid", "issuance:crypto")] * 2
    notes = scene.platform.realtime.get("/notifications/alice")
    assert sorted((n["kind"], n["token"], n["credits"]["micros"], n["credits"]["credits"]) for n in notes.values()) \
        == [("payment.received", "ETH", 250 * CREDIT, "250"), ("payment.received", "TST", 3 * CREDIT, "3")]
    with pytest.raises(DepositReviewed, match="not waiting for review"):  # the scan credited it: no admin's to
        scene.platform.deposits.credit_parked(eth.id, "alice", "admin-1")


def test_two_transfers_of_one_transaction_are_credited_each_by_its_place(scene: Scene) -> None:
    """A batch sender's transaction sends the deposit address two amounts: two deposits, each granted under the key
    of its place in the transaction (not the transaction's hash, which would make the second a replay)."""
    jo = scene.accounts[6]
    scene.link("jo", jo)
    scene.fund(jo, 10**9)
    scene.token.functions.transferEach([scene.deposit_to, scene.deposit_to], [1_000_000, 2_000_000]).transact(
        {"from": jo})
    mine(scene.w3, CONFIRMATIONS)
    assert scene.platform.deposits.scan().credited == 2
    assert scene.balance("jo") == 6 * CREDIT and len(scene.lots("jo")) == 2


def test_a_scan_reads_on_from_the_block_after_the_last_it_read(scene: Scene) -> None:
    """A deposit in the last block a scan read is not read again by the next scan (seen), nor by any after it."""
    kai = scene.accounts[6]
    scene.link("kai", kai)
    send_eth(scene.w3, kai, scene.deposit_to, ETHER // 10)
    mine(scene.w3, CONFIRMATIONS - 1)  # its block is the newest with its confirmations
    first = scene.platform.deposits.scan()
    assert (first.credited, first.last) == (1, scene.w3.eth.block_number - CONFIRMATIONS + 1)
    again = scene.platform.deposits.scan()
    assert (again.first, again.last, again.seen) == (first.last + 1, first.last, 0)
    mine(scene.w3, 1)
    after = scene.platform.deposits.scan()
    assert (after.first, after.last, after.seen, after.credited) == (first.last + 1, first.last + 1, 0, 0)


def test_a_scan_reads_its_batch_of_blocks_at_a_time(scene: Scene) -> None:
    """CRYPTO_SCAN_BATCH (7 here) bounds each read of the chain's logs (a node limits the blocks one query may
    span): the reads are consecutive, each of 7 blocks at most."""
    real, reads = scene.platform.deposits.chain, []

    class Counted:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def transfers(self, first: int, last: int, *rest: Any) -> Any:
            reads.append((first, last))
            return real.transfers(first, last, *rest)  # type: ignore[union-attr]

    scene.platform.deposits.chain = Counted()  # type: ignore[assignment]
    mine(scene.w3, 20)
    report = scene.platform.deposits.scan()
    assert reads[0][0] == report.first and reads[-1][1] == report.last and report.last - report.first >= 14
    assert all(last - first + 1 <= 7 for first, last in reads)
    assert all(b[0] == a[1] + 1 for a, b in pairwise(reads))
    assert [last - first + 1 for first, last in reads[:-1]] == [7] * (len(reads) - 1)


def test_deposits_read_again_after_a_crash_are_seen_not_taken_again(scene: Scene) -> None:
    """A crash after a batch's deposits were recorded and before its blocks were marked read: the next scan reads
    them again and finds them recorded (seen), a deposit an admin credited meanwhile stays credited (not parked
    again, to be credited twice), and none of them shows as pending."""
    lia, stranger = scene.accounts[8], scene.accounts[9]
    scene.link("lia", lia)
    send_eth(scene.w3, lia, scene.deposit_to, ETHER // 10)
    send_eth(scene.w3, stranger, scene.deposit_to, ETHER // 20)
    mine(scene.w3, CONFIRMATIONS)
    assert (scene.platform.deposits.scan().credited, len(scene.platform.deposits.all(PARKED))) == (1, 1)
    [parked] = scene.platform.deposits.all(PARKED)
    scene.platform.deposits.credit_parked(parked.id, "lia", "admin-1")
    real = scene.platform.deposits.store

    class Forgetful:  # the mark of the blocks read was lost
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def scanned(self, chain_id: int) -> None:
            return None

    scene.platform.deposits.store = Forgetful()  # type: ignore[assignment]
    assert scene.platform.deposits.pending("lia") == []
    report = scene.platform.deposits.scan()
    assert (report.credited, report.parked, report.seen) == (0, 0, 2)
    assert {d.status for d in scene.platform.deposits.mine("lia")} == {CREDITED}
    assert scene.balance("lia") == 150 * CREDIT


def test_a_grant_already_made_is_not_made_again_when_the_record_of_it_is_lost(scene: Scene, tmp_path: Path) -> None:
    """A crash between the grant and the deposit's record, or a scanner that forgot how far it read: the ledger's
    key (chain id, transaction hash, log index) makes the second grant a replay."""
    bob = scene.accounts[2]
    scene.link("bob", bob)
    send_eth(scene.w3, bob, scene.deposit_to, ETHER // 10)
    mine(scene.w3, CONFIRMATIONS)
    scene.platform.deposits.scan()
    assert scene.balance("bob") == 100 * CREDIT
    for n in range(10):  # a fresh record each time: every scan reads the same blocks from the start
        scene.platform.deposits.store = SqliteDeposits(tmp_path / f"forgotten-{n}.sqlite3")
        assert scene.platform.deposits.scan().credited == 1
    assert scene.balance("bob") == 100 * CREDIT
    assert len(scene.lots("bob")) == 1


def test_a_deposit_whose_scan_died_after_its_record_is_still_told_to_its_user_once(scene: Scene) -> None:
    """The scan dies after the credited deposit's record, before its notification: the next scan reads the block
    again and finds the deposit seen; the user is told once that the credits came."""
    carol = scene.accounts[3]
    scene.link("carol", carol)
    send_eth(scene.w3, carol, scene.deposit_to, ETHER // 10)
    mine(scene.w3, CONFIRMATIONS)
    with dying_after(scene.platform.deposits.store, "save"):
        scene.platform.deposits.scan()
    scene.platform.deposits.scan()
    notes = scene.platform.realtime.get("/notifications/carol") or {}
    assert [(n["kind"], n["credits"]["micros"]) for n in notes.values()] == [("payment.received", 100 * CREDIT)]
    assert scene.balance("carol") == 100 * CREDIT and len(scene.lots("carol")) == 1


def test_a_grant_whose_record_was_lost_is_recorded_at_its_own_rate_after_the_rate_changed(
        scene: Scene, tmp_path: Path) -> None:
    """The crash above, then a restart with a new rate: the scan records the grant that was made (its credits, its
    rate), and neither grants again nor stops at the ledger's idempotency conflict."""
    dan = scene.accounts[5]
    scene.link("dan", dan)
    send_eth(scene.w3, dan, scene.deposit_to, ETHER // 8 + 1)  # the wei over is worth PER_ETH/10^18 µc: a remainder
    mine(scene.w3, CONFIRMATIONS)
    scene.platform.deposits.scan()
    assert scene.balance("dan") == 125 * CREDIT
    deposits = scene.platform.deposits
    rules = deposits.rules
    assert rules is not None
    deposits.rules = replace(rules, tokens=tuple(replace(t, micros_per_unit=t.micros_per_unit * 2)
                                                 for t in rules.tokens))
    deposits.store = SqliteDeposits(tmp_path / "forgotten.sqlite3")
    assert deposits.scan().credited == 1
    assert scene.balance("dan") == 125 * CREDIT
    [recorded] = deposits.mine("dan")
    assert (recorded.status, recorded.credits, recorded.rate, recorded.remainder) == (
        CREDITED, 125 * CREDIT, PER_ETH, PER_ETH)  # the remainder too at the rate of then, not twice it
    assert recorded.lot == scene.lots("dan")[0].id
    audit = scene.platform.integrity.audit()
    assert audit.ok, audit


def test_a_remainder_below_one_micro_credit_is_recorded_and_dust_is_not_credited(scene: Scene) -> None:
    carol = scene.accounts[3]
    scene.link("carol", carol)
    wei = ETHER // 3  # 333.333… credits: 333_333_333 µc and a remainder
    send_eth(scene.w3, carol, scene.deposit_to, wei)
    send_eth(scene.w3, carol, scene.deposit_to, 10**8)  # worth 0.1 µc
    mine(scene.w3, CONFIRMATIONS)
    report = scene.platform.deposits.scan()
    assert (report.credited, report.dust) == (1, 1)
    assert scene.balance("carol") == wei * PER_ETH // ETHER == 333_333_333
    found = {d.status: d for d in scene.platform.deposits.mine("carol")}
    assert found[CREDITED].remainder == wei * PER_ETH % ETHER and found[CREDITED].rate == PER_ETH
    assert found[DUST].credits == 0


def test_a_deposit_worth_one_micro_credit_is_credited_and_a_wei_less_is_dust(scene: Scene) -> None:
    """At 1000 credits an ETH, a gwei buys one micro-credit: the least deposit credited. A wei less buys none."""
    olga = scene.accounts[4]
    scene.link("olga", olga)
    send_eth(scene.w3, olga, scene.deposit_to, 10**9)
    send_eth(scene.w3, olga, scene.deposit_to, 10**9 - 1)
    mine(scene.w3, CONFIRMATIONS)
    report = scene.platform.deposits.scan()
    assert (report.credited, report.dust) == (1, 1) and scene.balance("olga") == 1
    assert sorted((d.amount, d.status, d.credits) for d in scene.platform.deposits.mine("olga")) == [
        (10**9 - 1, DUST, 0), (10**9, CREDITED, 1)]


def test_a_deposit_opens_the_account_of_a_user_who_has_none_yet(scene: Scene) -> None:
    """Linking a wallet opens no account: the first deposit from it opens one, and is credited there."""
    pia = scene.accounts[2]
    scene.platform.deposits.wallets.link(Wallet(pia, "pia", scene.w3.eth.chain_id, "t"))
    send_eth(scene.w3, pia, scene.deposit_to, ETHER // 10)
    mine(scene.w3, CONFIRMATIONS)
    assert scene.platform.deposits.scan().credited == 1
    assert scene.balance("pia") == 100 * CREDIT


def test_a_wallet_linked_on_another_chain_is_still_its_users_here(scene: Scene) -> None:
    """Only a key's signature links a wallet, and a key has the same address on every EVM chain: a wallet linked
    while the platform took another chain's deposits (CRYPTO_CHAIN_ID changed since) is credited, not parked."""
    quinn = scene.accounts[3]
    scene.platform.credits.open_account("quinn")
    scene.platform.deposits.wallets.link(Wallet(quinn, "quinn", scene.w3.eth.chain_id + 1, "t"))
    send_eth(scene.w3, quinn, scene.deposit_to, ETHER // 10)
    mine(scene.w3, CONFIRMATIONS)
    assert scene.platform.deposits.scan().credited == 1
    assert scene.balance("quinn") == 100 * CREDIT


def test_the_admins_see_deposits_totalled_per_token_in_their_list_and_in_the_revenue(scene: Scene) -> None:
    """/admin/deposits and /admin/revenue total deposits per coin or token: how many were credited, the base units
    they brought (as digits), their credits, and how many wait for an admin."""
    from creditflow.bootstrap import issue_dev_token
    from creditflow.entrypoints.http.app import create_app

    alice, stranger = scene.accounts[1], scene.accounts[5]
    scene.link("alice", alice)
    scene.fund(alice, 5_000_000)
    send_eth(scene.w3, alice, scene.deposit_to, ETHER // 4)  # 250 credits
    send_token(scene.token, alice, scene.deposit_to, 1_500_000)  # 1.5 TST: 3 credits
    send_eth(scene.w3, stranger, scene.deposit_to, ETHER // 20)  # parked: nobody linked it
    mine(scene.w3, CONFIRMATIONS)
    assert (scene.platform.deposits.scan().credited, scene.platform.deposits.all(PARKED) != []) == (2, True)
    api = create_app(scene.platform).test_client()
    admin = {"Authorization": f"Bearer {issue_dev_token(scene.platform.settings, 'root', admin=True)}"}
    eth, tst = (("ETH", str(ETHER // 4), "250", 1), ("TST", "1500000", "3", 0))
    totals = [{"token": token, "deposits": 1, "amount": amount, "credits": {"credits": credits,
                                                                          "micros": int(credits) * CREDIT},
               "parked": parked} for token, amount, credits, parked in (eth, tst)]
    assert api.get("/api/v1/admin/deposits", headers=admin).json["totals"] == totals
    user = {"Authorization": f"Bearer {issue_dev_token(scene.platform.settings, 'alice')}"}
    refused = api.get("/api/v1/admin/deposits", headers=user)  # everyone's deposits: not a user's to list
    assert refused.status_code == 403 and refused.content_type == "application/problem+json", refused.json
    assert api.get("/api/v1/admin/revenue", headers=admin).json["crypto"] == totals  # the stranger's parked too


def test_a_deposit_from_a_wallet_nobody_linked_waits_for_an_admin(scene: Scene) -> None:
    stranger = scene.accounts[4]
    send_eth(scene.w3, stranger, scene.deposit_to, ETHER // 20)
    send_eth(scene.w3, stranger, scene.deposit_to, ETHER // 50)
    mine(scene.w3, CONFIRMATIONS)
    assert scene.platform.deposits.scan().parked == 2
    parked = scene.platform.deposits.all(PARKED)
    assert len(parked) == 2 and all(d.uid is None and d.credits == 0 for d in parked)
    scene.link("dave", stranger)  # linking later does not take deposits already parked
    assert scene.platform.deposits.scan().credited == 0 and scene.balance("dave") == 0
    big, small = sorted(parked, key=lambda d: -d.amount)
    credited = scene.platform.deposits.credit_parked(big.id, "dave", "admin-1")
    assert credited.status == CREDITED and credited.reviewed_by == "admin-1" and credited.credits == 50 * CREDIT
    assert scene.platform.deposits.credit_parked(big.id, "dave", "admin-1") == credited  # a retry
    with pytest.raises(DepositReviewed, match="is credited to dave, not waiting"):  # once said "another user"
        scene.platform.deposits.credit_parked(big.id, "erin", "admin-1")
    with pytest.raises(DepositReviewed, match="is credited to dave, not waiting"):  # to erin, or refunded: alike
        scene.platform.deposits.refund_parked(big.id, "admin-1", "sent back")
    refunded = scene.platform.deposits.refund_parked(small.id, "admin-1", "sent back in 0xabc")
    assert (refunded.status, refunded.credits, refunded.reviewed_by) == (REFUNDED, 0, "admin-1")
    assert scene.platform.deposits.refund_parked(small.id, "admin-1", "sent back in 0xabc") == refunded  # a retry
    with pytest.raises(DepositReviewed):  # another review of it is no retry: it is refused, the note kept
        scene.platform.deposits.refund_parked(small.id, "admin-2", "sent back in 0xdef")
    assert [d.note for d in scene.platform.deposits.all() if d.id == small.id] == ["sent back in 0xabc"]
    with pytest.raises(DepositReviewed):
        scene.platform.deposits.credit_parked(small.id, "dave", "admin-1")
    with pytest.raises(UnknownDeposit):
        scene.platform.deposits.credit_parked("1:0xnothing:native", "dave", "admin-1")
    assert scene.balance("dave") == 50 * CREDIT


def test_a_parked_deposit_of_a_token_no_longer_accepted_is_refused_in_words(scene: Scene) -> None:
    from dataclasses import replace as changed

    from creditflow.domain.crypto import TokenNotAccepted
    from creditflow.entrypoints.http.statuses import status_of

    stranger = scene.accounts[5]
    send_eth(scene.w3, stranger, scene.deposit_to, ETHER // 20)
    mine(scene.w3, CONFIRMATIONS)
    assert scene.platform.deposits.scan().parked == 1
    [parked] = scene.platform.deposits.all(PARKED)
    rules = scene.platform.deposits.rules
    assert rules is not None
    scene.platform.deposits.rules = changed(rules, tokens=tuple(t for t in rules.tokens if t.symbol != "ETH"))
    with pytest.raises(TokenNotAccepted) as refused:
        scene.platform.deposits.credit_parked(parked.id, "dave", "admin-1")
    assert status_of(refused.value) == 409 and "ETH" in refused.value.detail
    assert scene.platform.deposits.all(PARKED) == [parked] and scene.balance("dave") == 0


def test_tokens_not_on_the_allowlist_and_failed_transfers_credit_nothing(scene: Scene, chain: dict[str, Any]) -> None:
    erin = scene.accounts[5]
    scene.link("erin", erin)
    other = deploy_token(scene.w3, scene.accounts[0], "BAD", 6)
    send_token(other, scene.accounts[0], erin, 10**9)
    send_token(other, erin, scene.deposit_to, 10**9)  # a Transfer log to us, from a contract nobody allowed
    with pytest.raises(Exception, match="balance"):  # reverted: no log, no credit
        scene.token.functions.transfer(scene.deposit_to, 10**12).transact({"from": erin})
    mine(scene.w3, CONFIRMATIONS)
    report = scene.platform.deposits.scan()
    assert (report.credited, report.parked, report.dust) == (0, 0, 0)
    assert scene.balance("erin") == 0


def test_a_reorganised_deposit_is_never_credited(scene: Scene) -> None:
    frank = scene.accounts[6]
    scene.link("frank", frank)
    snapshot = scene.w3.testing.snapshot()  # type: ignore[attr-defined]
    send_eth(scene.w3, frank, scene.deposit_to, ETHER)
    assert scene.platform.deposits.scan().credited == 0  # not confirmed yet
    scene.w3.testing.revert(snapshot)  # type: ignore[attr-defined]  # the block is gone from the chain
    mine(scene.w3, CONFIRMATIONS + 1)
    assert scene.platform.deposits.scan().credited == 0
    assert scene.balance("frank") == 0 and scene.platform.deposits.mine("frank") == []


def test_a_configuration_the_chain_contradicts_credits_nothing(tmp_path: Path, chain: dict[str, Any],
                                                                clock: SteppedClock) -> None:
    for decimals in (18, 2):  # more than the token's 6, or fewer: a rate off by a power of ten either way
        wrong_decimals = make_scene(tmp_path / f"a{decimals}", chain, clock,
                                    crypto_tokens=(("TST", chain["token"].address, decimals, PER_TOKEN),))
        wrong_decimals.link("gina", chain["accounts"][7])
        send_token(chain["token"], chain["accounts"][0], wrong_decimals.deposit_to, 10**6)
        mine(chain["w3"], CONFIRMATIONS)
        with pytest.raises(ChainMismatch, match=f"6 decimals on chain, and CRYPTO_TOKENS says {decimals}"):
            wrong_decimals.platform.deposits.scan()
        assert wrong_decimals.platform.deposits.all() == []
    wrong_chain = make_scene(tmp_path / "b", chain, clock, crypto_chain_id=1)
    with pytest.raises(ChainMismatch, match="serves chain"):
        wrong_chain.platform.deposits.scan()
    assert wrong_chain.platform.deposits.all() == []


def test_without_a_chain_deposits_answer_that_they_are_not_configured(tmp_path: Path, clock: SteppedClock) -> None:
    platform = build(Settings.from_env(runtime="local", data_dir=tmp_path), clock=clock)
    with pytest.raises(CryptoNotConfigured, match="CRYPTO_RPC_URL"):
        platform.deposits.scan()
    assert platform.deposits.all() == []
    from creditflow.bootstrap import issue_dev_token
    from creditflow.entrypoints.http.app import create_app

    admin = {"Authorization": f"Bearer {issue_dev_token(platform.settings, 'root', admin=True)}"}
    listed = create_app(platform).test_client().get("/api/v1/admin/deposits", headers=admin)
    assert listed.status_code == 200 and listed.json["scanning"] is False  # the console offers no scan then


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.one_of(
    st.tuples(st.just("deposit"), st.sampled_from([1, 2, 3]), st.integers(1, 10**18)),
    st.tuples(st.just("spend"), st.sampled_from(["u1", "u2"]), st.integers(1, 200 * CREDIT)),
    st.tuples(st.just("mine"), st.integers(1, 4), st.just(0)),
    st.tuples(st.just("scan"), st.just(0), st.just(0))), max_size=14))
def test_any_interleaving_of_deposits_scans_and_spends_keeps_the_money_whole(
        steps: list[tuple[str, Any, int]], tmp_path_factory: pytest.TempPathFactory, chain: dict[str, Any]) -> None:
    scene = make_scene(tmp_path_factory.mktemp("interleaving"), chain, SteppedClock())
    owners = {scene.accounts[1]: "u1", scene.accounts[2]: "u2"}  # accounts[3] sends from a wallet nobody linked
    for wallet, uid in owners.items():
        scene.link(uid, wallet)
    sent: dict[str, int] = {}
    for n, (step, who, amount) in enumerate(steps):
        if step == "deposit":
            receipt = send_eth(scene.w3, scene.accounts[who], scene.deposit_to, amount)
            sent[receipt["transactionHash"].to_0x_hex()] = amount
        elif step == "spend":
            available = scene.balance(who)
            if available:
                hold = scene.platform.credits.reserve(who, min(amount, available), key=f"spend-{n}")
                scene.platform.credits.settle(who, hold.hold, min(amount, available), key=f"settle-{n}")
        elif step == "mine":
            mine(scene.w3, who)
        else:
            scene.platform.deposits.scan()
    mine(scene.w3, CONFIRMATIONS)
    scene.platform.deposits.scan()
    deposits = scene.platform.deposits.all()
    assert sorted(d.amount for d in deposits) == sorted(sent.values())  # each transfer recorded once
    for deposit in deposits:
        owner = owners.get(deposit.sender)
        expected = deposit.amount * PER_ETH // ETHER
        if owner is None:
            assert deposit.status in (PARKED, DUST) and deposit.credits == 0
        elif expected:
            assert (deposit.status, deposit.uid, deposit.credits) == (CREDITED, owner, expected)
    for uid in owners.values():
        granted = sum(d.credits for d in deposits if d.uid == uid)
        assert sum(lot.granted for lot in scene.lots(uid)) == granted  # one paid lot per credited deposit, no more
        assert 0 <= scene.balance(uid) <= granted
    audit = scene.platform.integrity.audit()
    assert audit.ok, audit
    scene.platform.store.close()  # type: ignore[attr-defined]


def test_deposits_are_recorded_with_amounts_beyond_64_bits(scene: Scene) -> None:
    """A wei amount outgrows a 64-bit integer at 18.4 ETH: stores keep it whole."""
    deposit = scene.platform.deposits.store
    sample = replace(_sample(), amount=10**24)
    deposit.save(sample)
    assert deposit.deposit(sample.id) == sample


def _sample() -> Any:
    from creditflow.domain.crypto import Deposit

    return Deposit("1:0xaa:native", 1, "0xaa", -1, 5, "0x" + "11" * 20, "ETH", 1, PARKED, "2026-01-01T00:00:00Z")


def test_pending_deposits_show_their_confirmations_until_credited(scene: Scene) -> None:
    gus = scene.accounts[8]
    scene.link("gus", gus)
    send_eth(scene.w3, scene.accounts[9], scene.deposit_to, ETHER // 100)  # someone else's: not gus's to see
    send_eth(scene.w3, gus, scene.deposit_to, ETHER // 10)
    pending = scene.platform.deposits.pending("gus")
    assert [(p.token, p.transfer.amount, p.confirmations, p.needed) for p in pending] == [
        ("ETH", ETHER // 10, 1, CONFIRMATIONS)]
    from creditflow.bootstrap import issue_dev_token
    from creditflow.entrypoints.http.app import create_app

    mine_only = {"Authorization": f"Bearer {issue_dev_token(scene.platform.settings, 'gus')}"}
    listed = create_app(scene.platform).test_client().get("/api/v1/deposits/pending", headers=mine_only).json
    assert [(d["token"], d["amount"], d["sender"], d["confirmations"], d["confirmationsNeeded"])
            for d in listed["deposits"]] == [("ETH", str(ETHER // 10), pending[0].transfer.sender, 1, CONFIRMATIONS)]
    mine(scene.w3, 1)
    assert [p.confirmations for p in scene.platform.deposits.pending("gus")] == [2]
    mine(scene.w3, CONFIRMATIONS)
    assert len(scene.platform.deposits.pending("gus")) == 1  # confirmed, not scanned yet: still pending
    scene.platform.deposits.scan()
    assert scene.platform.deposits.pending("gus") == [] and scene.balance("gus") == 100 * CREDIT
    assert scene.platform.deposits.pending("nobody") == []


def test_a_transfer_in_the_first_block_to_scan_is_pending(scene: Scene) -> None:
    """Nothing scanned yet: pending looks from CRYPTO_START_BLOCK itself, where the first transfer may be, before
    and after it has its confirmations."""
    max_ = scene.accounts[8]
    scene.link("max", max_)
    start = scene.platform.deposits.rules.start_block  # type: ignore[union-attr]
    receipt = send_eth(scene.w3, max_, scene.deposit_to, ETHER // 10)
    assert receipt["blockNumber"] == start
    assert [p.transfer.block_number for p in scene.platform.deposits.pending("max")] == [start]
    mine(scene.w3, CONFIRMATIONS)
    assert [p.confirmations for p in scene.platform.deposits.pending("max")] == [CONFIRMATIONS + 1]


def test_with_one_confirmation_a_transfer_in_the_newest_block_is_pending_until_scanned(
        tmp_path: Path, chain: dict[str, Any], clock: SteppedClock) -> None:
    """One confirmation: a transfer is confirmed in the block that holds it, and pending until a scan reads it,
    even when that block is the head, the only block not read yet."""
    scene = make_scene(tmp_path / "data", chain, clock, crypto_confirmations=1)
    try:
        ned = scene.accounts[8]
        scene.link("ned", ned)
        mine(scene.w3, 1)
        scene.platform.deposits.scan()  # read up to the head
        send_eth(scene.w3, ned, scene.deposit_to, ETHER // 10)  # the new head
        assert [(p.confirmations, p.needed) for p in scene.platform.deposits.pending("ned")] == [(1, 1)]
        assert scene.platform.deposits.scan().credited == 1 and scene.platform.deposits.pending("ned") == []
    finally:
        scene.platform.store.close()  # type: ignore[attr-defined]


def test_pending_deposits_look_back_five_hundred_blocks_at_most(scene: Scene) -> None:
    """Pending reads the chain live, so it looks at the last 500 blocks only: a transfer with 500 confirmations,
    not scanned yet, still shows; one with 501 no longer does."""
    ida = scene.accounts[7]
    scene.link("ida", ida)
    send_eth(scene.w3, ida, scene.deposit_to, ETHER // 100)
    send_eth(scene.w3, ida, scene.deposit_to, ETHER // 50)  # the next block
    mine(scene.w3, 499)  # the second now has 500 confirmations, the first 501
    pending = scene.platform.deposits.pending("ida")
    assert [(p.transfer.amount, p.confirmations) for p in pending] == [(ETHER // 50, 500)]


def test_a_node_that_does_not_answer_is_said_so(tmp_path: Path, clock: SteppedClock) -> None:
    from creditflow.domain.crypto import ChainUnavailable
    from tests.firestore_emulator import free_port

    platform = build(Settings.from_env(runtime="local", data_dir=tmp_path, crypto_chain_id=1,
                                       crypto_rpc_url=f"http://127.0.0.1:{free_port()}",
                                       crypto_deposit_address="0x" + "de" * 20, crypto_credits_per_eth=CREDIT),
                     clock=clock)
    with pytest.raises(ChainUnavailable, match="did not answer"):
        platform.deposits.scan()
    platform.deposits.wallets.link(Wallet("0x" + "ab" * 20, "hal", 1, "t"))
    with pytest.raises(ChainUnavailable):
        platform.deposits.pending("hal")


def test_a_block_that_changes_while_it_is_read_is_read_again_not_credited(scene: Scene) -> None:
    """The node answers the logs of one fork and the block hashes of another (a reorganisation in between): the
    scan stops before that block, credits nothing from it, and reads it again next time."""
    grace = scene.accounts[7]
    scene.link("grace", grace)
    send_eth(scene.w3, grace, scene.deposit_to, ETHER // 10)  # 100 credits
    mine(scene.w3, CONFIRMATIONS)
    real = scene.platform.deposits.chain

    class Forked:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def block_hash(self, number: int) -> str:
            return "0x" + "ab" * 32

    scene.platform.deposits.chain = Forked()  # type: ignore[assignment]
    report = scene.platform.deposits.scan()
    assert report.reorganised and report.credited == 0 and scene.balance("grace") == 0
    scene.platform.deposits.chain = real
    assert scene.platform.deposits.scan().credited == 1 and scene.balance("grace") == 100 * CREDIT
