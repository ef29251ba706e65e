"""Crypto deposits: a scanner reads the chain from the last block it finished, takes transfers of ETH and of the
allowlisted tokens to the deposit address once they have their confirmations and their block is still canonical,
and credits each to the user whose linked wallet sent it, once per (chain id, transaction hash, the transfer's place
in the transaction): the ledger keys the grant by it, in the grant's own transaction. Deposits from wallets nobody
linked wait for an admin."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace

from ..domain.crypto import (
    CREDITED,
    DUST,
    PARKED,
    REFUNDED,
    ChainMismatch,
    CryptoNotConfigured,
    Deposit,
    DepositReviewed,
    DepositRules,
    Transfer,
    UnknownDeposit,
)
from ..domain.errors import AccountClosed, InvalidAmount, InvalidGrant
from ..domain.money import money
from ..domain.timefmt import iso
from ..ports import Chain, Clock, DepositStore, WalletStore
from .credits import Credits
from .notifications import Notifications

log = logging.getLogger(__name__)
# what the ledger refuses a deposit's grant for, whatever the grant is retried: such a deposit waits for an admin
# (a store's failure is no refusal: it stops the scan, so that the block is read again)
REFUSED = (InvalidAmount, InvalidGrant, AccountClosed)


@dataclass(frozen=True)
class ScanReport:
    """One scan: the blocks read (`last` < `first` when none was due), and what became of the transfers in them."""

    first: int
    last: int
    head: int
    credited: int = 0
    parked: int = 0
    dust: int = 0  # worth less than one micro-credit: recorded, not credited
    seen: int = 0  # found recorded already (an earlier scan read them)
    reorganised: bool = False  # a block changed while it was read: the scan stopped before it, to read it again


@dataclass(frozen=True)
class PendingDeposit:
    """A transfer from a user's wallet seen on chain and not credited yet: waiting for confirmations or a scan."""

    transfer: Transfer
    token: str
    confirmations: int
    needed: int


PENDING_WINDOW = 500  # blocks behind the head looked at for pending deposits, at most


class Deposits:
    def __init__(self, credits: Credits, wallets: WalletStore, store: DepositStore, chain: Chain | None,
                 rules: DepositRules | None, notifications: Notifications, clock: Clock,
                 missing: str = "set CRYPTO_RPC_URL, CRYPTO_CHAIN_ID and CRYPTO_DEPOSIT_ADDRESS") -> None:
        self.credits, self.wallets, self.store = credits, wallets, store
        self.chain, self.rules = chain, rules
        self.notifications, self.clock = notifications, clock
        self.missing = missing
        self._scanning = threading.Lock()  # one scan at a time in this process; the ledger's keys guard the rest
        self._reviewing = threading.Lock()
        self._checked = False

    @property
    def configured(self) -> bool:
        return self.chain is not None and self.rules is not None

    def scan(self) -> ScanReport:
        """Read every confirmed block not read yet, in batches, and act on the deposits in them. A block is marked
        read only after everything in it is recorded: a crash reads it again, and what was recorded is seen."""
        chain, rules = self._configured()
        with self._scanning:
            self._check(chain, rules)
            head = chain.head()
            done = self.store.scanned(rules.chain_id)
            first = rules.start_block if done is None else done + 1
            report = ScanReport(first, first - 1, head)
            due = rules.confirmed_up_to(head)
            while report.last < due:
                start = report.last + 1
                last = min(due, start + rules.batch_blocks - 1)
                transfers = chain.transfers(start, last, rules.address, rules.contracts)
                if not self._canonical(chain, transfers):
                    return replace(report, reorganised=True)
                for transfer in transfers:
                    outcome = self._take(transfer, rules)
                    report = replace(report, **{outcome: getattr(report, outcome) + 1})
                self.store.mark_scanned(rules.chain_id, last)
                report = replace(report, last=last)
            return report

    def pending(self, uid: str) -> list[PendingDeposit]:
        """The user's transfers on chain not recorded yet (in blocks not confirmed, or not scanned), with how many
        confirmations each has of those it needs: read live, nothing recorded."""
        chain, rules = self._configured()
        wallets = {w.address for w in self.wallets.of_user(uid)}
        if not wallets:
            return []
        head = chain.head()
        done = self.store.scanned(rules.chain_id)
        first = max(rules.start_block, head - PENDING_WINDOW + 1,
                    min(rules.confirmed_up_to(head), done if done is not None else rules.start_block - 1) + 1)
        if first > head:
            return []
        return [PendingDeposit(t, rules.token(t.contract).symbol, head - t.block_number + 1,  # type: ignore[union-attr]
                               rules.confirmations)
                for t in chain.transfers(first, head, rules.address, rules.contracts)
                if t.sender in wallets and self.store.deposit(t.id) is None]

    def mine(self, uid: str, limit: int = 50) -> list[Deposit]:
        return self.store.of_user(uid, limit)

    def all(self, status: str | None = None, limit: int = 500) -> list[Deposit]:
        return self.store.all(status, limit)

    def credit_parked(self, deposit_id: str, uid: str, admin: str) -> Deposit:
        """An admin credits a parked deposit to a user (who showed it was theirs)."""
        rules = self._configured()[1]
        with self._reviewing:
            deposit = self._deposit(deposit_id)
            if deposit.status == CREDITED and deposit.uid == uid and deposit.reviewed_by is not None:
                return deposit  # a retry of this review: its answer again
            deposit = self._parked(deposit)
            self.credits.open_account(uid)
            credited = self._credit(replace(deposit, uid=uid, reviewed_by=admin), rules)
        return credited

    def refund_parked(self, deposit_id: str, admin: str, note: str) -> Deposit:
        """An admin records that a parked deposit was sent back to its sender (outside the platform)."""
        with self._reviewing:
            deposit = self._deposit(deposit_id)
            if deposit.status == REFUNDED and deposit.note == note:
                return deposit  # a retry of this review
            deposit = replace(self._parked(deposit), status=REFUNDED, reviewed_by=admin, note=note)
            self.store.save(deposit)
        return deposit

    # -- helpers ------------------------------------------------------------------------------------------------

    def _configured(self) -> tuple[Chain, DepositRules]:
        if self.chain is None or self.rules is None:
            raise CryptoNotConfigured(f"crypto deposits are not configured on this platform: {self.missing}")
        return self.chain, self.rules

    def _check(self, chain: Chain, rules: DepositRules) -> None:
        """Once: the chain is the one configured and each token's decimals are what the rates assume."""
        if self._checked:
            return
        if (found := chain.chain_id()) != rules.chain_id:
            raise ChainMismatch(f"the node at CRYPTO_RPC_URL serves chain {found}, and CRYPTO_CHAIN_ID says "
                                f"{rules.chain_id}")
        for token in rules.tokens:
            if token.contract is not None and (decimals := chain.decimals(token.contract)) != token.decimals:
                raise ChainMismatch(f"{token.symbol} ({token.contract}) has {decimals} decimals on chain, and "
                                    f"CRYPTO_TOKENS says {token.decimals}: its rate would be off by a factor of "
                                    f"10^{abs(decimals - token.decimals)}")
        self._checked = True

    def _canonical(self, chain: Chain, transfers: list[Transfer]) -> bool:
        """Each transfer's block is still the one at its height."""
        hashes: dict[int, str | None] = {}
        for transfer in transfers:
            if transfer.block_number not in hashes:
                hashes[transfer.block_number] = chain.block_hash(transfer.block_number)
            if hashes[transfer.block_number] != transfer.block_hash:
                log.warning("block %d changed while it was read: reading it again next scan", transfer.block_number)
                return False
        return True

    def _take(self, transfer: Transfer, rules: DepositRules) -> str:
        if self.store.deposit(transfer.id) is not None:
            return "seen"
        token = rules.token(transfer.contract)
        assert token is not None, "the chain returned a transfer of a contract not asked for"
        credits, remainder = token.credits_for(transfer.amount)
        wallet = self.wallets.owner(transfer.sender)
        deposit = Deposit(transfer.id, transfer.chain_id, transfer.tx_hash, transfer.log_index,
                          transfer.block_number, transfer.sender, token.symbol, transfer.amount, PARKED,
                          iso(self.clock.now()), rate=token.micros_per_unit, remainder=remainder,
                          decimals=token.decimals)
        if credits == 0:  # the user's to see, if the wallet is linked; nothing to credit
            self.store.save(replace(deposit, status=DUST, uid=wallet.uid if wallet else None))
            return "dust"
        if wallet is None:
            log.info("deposit %s from %s, a wallet nobody linked: parked for an admin", transfer.id, transfer.sender)
            self.store.save(deposit)
            return "parked"
        self.credits.open_account(wallet.uid)
        try:
            self._credit(replace(deposit, uid=wallet.uid), rules)
        except REFUSED as refused:  # never credited, however often the block is read: an admin decides
            log.warning("deposit %s to %s refused by the ledger, parked for an admin: %s", transfer.id, wallet.uid,
                        refused.detail)
            self.store.save(replace(deposit, uid=wallet.uid,
                                    note=f"not credited: the ledger refused it ({refused.code}): {refused.detail}"))
            return "parked"
        return "credited"

    def _credit(self, deposit: Deposit, rules: DepositRules) -> Deposit:
        """Grant the deposit's paid lot (keyed by its id, so a second grant replays the first), then record it. A
        grant made before a crash lost its record is recorded as made, at the rate of then, whatever the rate now."""
        assert deposit.uid is not None
        token = rules.by_symbol(deposit.token)
        key = f"crypto:{deposit.id}"
        made = self.credits.grant_made("crypto", key)
        if made is not None and made.memo.get("rate", "").isdigit():
            token = replace(token, micros_per_unit=int(made.memo["rate"]))
        credits, remainder = token.credits_for(deposit.amount)
        granted = self.credits.grant(deposit.uid, credits, source="crypto", lot_kind="paid", key=key,
                                     reference=deposit.id, memo={
                                         "token": token.symbol, "amount": str(deposit.amount),
                                         "rate": str(token.micros_per_unit), "tx": deposit.tx_hash,
                                         "remainder": f"{remainder}/10^{token.decimals}", "sender": deposit.sender})
        credited = replace(deposit, status=CREDITED, credits=credits, rate=token.micros_per_unit,
                           remainder=remainder, lot=granted.lot)
        # told before the record (named by the deposit, so telling twice is once): once the record is saved, a scan
        # reading the block again finds the deposit seen, and a scan that died between the two would never tell
        self.notifications.notify(deposit.uid, deposit.id, {
            "kind": "payment.received", "at": iso(self.clock.now()), "payment": deposit.id,
            "credits": money(credits), "token": token.symbol, "amount": str(deposit.amount)})
        self.store.save(credited)
        return credited

    def _deposit(self, deposit_id: str) -> Deposit:
        deposit = self.store.deposit(deposit_id)
        if deposit is None:
            raise UnknownDeposit(f"no deposit {deposit_id!r}")
        return deposit

    @staticmethod
    def _parked(deposit: Deposit) -> Deposit:
        if deposit.status != PARKED:
            raise DepositReviewed(f"deposit {deposit.id} is {deposit.status}"
                                  f"{f' to {deposit.uid}' if deposit.uid else ''}, not waiting for review")
        return deposit

