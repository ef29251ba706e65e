"""Crypto top-ups: wallets linked by Sign-In with Ethereum under /api/v1/wallets, the caller's deposits, and the
admins' review of deposits from wallets nobody linked (credit to a user, or mark refunded) and scans on demand."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from werkzeug.routing import BaseConverter

from ...bootstrap import Platform
from ...domain.callers import Caller
from ...domain.crypto import Deposit, Token, Wallet, deposit_totals
from . import schemas as s
from .api import Routes

V1 = "/api/v1"
ADDRESS = r"^0x[0-9a-fA-F]{40}$"
DEPOSIT_ID = r"^[0-9]{1,20}:0x[0-9a-f]{64}:([0-9]{1,6}|native)$"


class AddressConverter(BaseConverter):
    """A wallet address in a path (so that /wallets/{address} never takes /wallets/nonce)."""

    regex = ADDRESS[1:-1]

routes = Routes()


class NonceIn(s.Strict):
    address: str = Field(pattern=ADDRESS, description="the wallet to link (EIP-55 checksum, or all lower case)",
                         examples=["0x52908400098527886E0F7030069857D2E4169EE7"])


class NonceOut(s.Out):
    nonce: str
    message: str = Field(description="the exact EIP-4361 text to sign with the wallet (personal_sign)")
    chain_id: int
    expires_at: str


class LinkIn(s.Strict):
    message: str = Field(min_length=1, max_length=2000, description="the message given with the nonce, unchanged")
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$", description="its signature by the wallet (65 bytes)")


class WalletOut(s.Out):
    address: str
    chain_id: int
    linked_at: str

    @classmethod
    def of(cls, wallet: Wallet) -> WalletOut:
        return cls(address=wallet.address, chain_id=wallet.chain_id, linked_at=wallet.linked_at)


class TokenOut(s.Out):
    symbol: str
    contract: str | None = Field(description="the ERC-20 contract; null for the chain's own coin (ETH)")
    decimals: int
    credits_per_unit: s.Money = Field(description="credits for one whole unit (10^decimals base units)")

    @classmethod
    def of(cls, token: Token) -> TokenOut:
        return cls(symbol=token.symbol, contract=token.contract, decimals=token.decimals,
                   credits_per_unit=s.Money.of(token.micros_per_unit))


class WalletsOut(s.Out):
    wallets: list[WalletOut]
    deposit_address: str | None = Field(description="where to send ETH or a listed token from a linked wallet")
    chain_id: int | None
    tokens: list[TokenOut]
    confirmations: int = Field(description="blocks a deposit waits for before it is credited")


class DepositOut(s.Out):
    id: str = Field(description="chain id : transaction hash : log index (native for ETH)")
    chain_id: int
    tx_hash: str
    block_number: int
    sender: str
    token: str
    amount: str = Field(description="base units sent (wei for ETH), as decimal digits")
    decimals: int = Field(description="the token's decimals: amount ÷ 10^decimals is in whole units")
    status: str = Field(description="credited, parked (sender not linked, or the ledger refused it: an admin "
                                    "reviews it), refunded or dust")
    credits: s.Money
    seen_at: str
    reviewed_by: str | None = None
    note: str | None = None

    @classmethod
    def of(cls, d: Deposit) -> DepositOut:
        return cls(id=d.id, chain_id=d.chain_id, tx_hash=d.tx_hash, block_number=d.block_number, sender=d.sender,
                   token=d.token, amount=str(d.amount), decimals=d.decimals, status=d.status,
                   credits=s.Money.of(d.credits), seen_at=d.seen_at, reviewed_by=d.reviewed_by, note=d.note)


class DepositsOut(s.Out):
    deposits: list[DepositOut]


class DepositTotalsOut(s.Out):
    token: str
    deposits: int = Field(description="deposits credited")
    amount: str = Field(description="base units received by credited deposits, as decimal digits")
    credits: s.Money
    parked: int = Field(description="deposits waiting for an admin")


class AdminDepositsOut(s.Out):
    deposits: list[DepositOut]
    totals: list[DepositTotalsOut] = Field(description="per coin or token, over the deposits listed")
    scanning: bool = Field(description="whether a chain is configured to scan (POST /admin/deposits/scan: 503 "
                                       "when not)")


class PendingDepositOut(s.Out):
    tx_hash: str
    block_number: int
    sender: str
    token: str
    amount: str = Field(description="base units sent, as decimal digits")
    confirmations: int
    confirmations_needed: int = Field(description="confirmations it needs before it is credited")


class PendingDepositsOut(s.Out):
    deposits: list[PendingDepositOut]


class DepositsQuery(s.Strict):
    model_config = s.Strict.model_config | {"strict": False}  # a query's values are text
    status: Literal["credited", "parked", "refunded", "dust"] | None = None


class CreditDepositIn(s.Strict):
    uid: str = Field(min_length=1, max_length=128, pattern=s.USER_ID, description="the user the deposit is credited "
                     "to")


class RefundDepositIn(s.Strict):
    note: str = Field(min_length=1, max_length=500, description="how it was sent back (the refund's tx hash)")


class ScanOut(s.Out):
    first: int
    last: int = Field(description="the last block read (below first when none was due)")
    head: int
    credited: int
    parked: int
    dust: int
    seen: int
    reorganised: bool


@routes.route("POST", f"{V1}/wallets/nonce", summary="A single-use nonce (10 minutes) and the Sign-In with Ethereum "
              "message to sign for linking a wallet", body=NonceIn, response=NonceOut, errors=(422, 503))
def wallet_nonce(platform: Platform, caller: Caller, body: NonceIn) -> NonceOut:
    challenge = platform.wallets.challenge(caller.uid, body.address)
    return NonceOut(nonce=challenge.nonce, message=challenge.message, chain_id=challenge.chain_id,
                    expires_at=challenge.expires_at)


@routes.route("POST", f"{V1}/wallets", summary="Link the wallet that signed the message (its deposits are credited "
              "to the caller)", body=LinkIn, response=WalletOut, errors=(409, 422, 503))
def link_wallet(platform: Platform, caller: Caller, body: LinkIn) -> WalletOut:
    return WalletOut.of(platform.wallets.link(caller.uid, body.message, body.signature))


@routes.route("GET", f"{V1}/wallets", summary="The caller's linked wallets, where to send deposits and what is taken",
              response=WalletsOut)
def list_wallets(platform: Platform, caller: Caller) -> WalletsOut:
    rules = platform.deposits.rules
    return WalletsOut(wallets=[WalletOut.of(w) for w in platform.wallets.mine(caller.uid)],
                      deposit_address=rules.address if rules else None, chain_id=platform.settings.crypto_chain_id,
                      tokens=[TokenOut.of(t) for t in rules.tokens] if rules else [],
                      confirmations=platform.settings.crypto_confirmations)


@routes.route("DELETE", f"{V1}/wallets/{{address}}", summary="Unlink one of the caller's wallets (deposits from it "
              "are then parked for an admin)", response=WalletsOut, errors=(404, 422),
              converters={"address": "wallet_address"},
              path_schemas={"address": {"type": "string", "pattern": ADDRESS}})
def unlink_wallet(platform: Platform, caller: Caller, address: str) -> WalletsOut:
    platform.wallets.unlink(caller.uid, address)
    return list_wallets(platform, caller)


@routes.route("GET", f"{V1}/deposits", summary="The caller's crypto deposits, newest block first",
              response=DepositsOut)
def my_deposits(platform: Platform, caller: Caller) -> DepositsOut:
    return DepositsOut(deposits=[DepositOut.of(d) for d in platform.deposits.mine(caller.uid)])


@routes.route("GET", f"{V1}/deposits/pending", summary="The caller's transfers on chain not credited yet, with their "
              "confirmations (read from the chain now)", response=PendingDepositsOut, errors=(502, 503))
def pending_deposits(platform: Platform, caller: Caller) -> PendingDepositsOut:
    return PendingDepositsOut(deposits=[PendingDepositOut(
        tx_hash=p.transfer.tx_hash, block_number=p.transfer.block_number, sender=p.transfer.sender, token=p.token,
        amount=str(p.transfer.amount), confirmations=p.confirmations,
        confirmations_needed=p.needed)
        for p in platform.deposits.pending(caller.uid)])


@routes.route("GET", f"{V1}/admin/deposits", summary="Crypto deposits, newest block first, of one status or all "
              "(admins), with totals per coin or token", auth="admin", query=DepositsQuery, response=AdminDepositsOut)
def admin_deposits(platform: Platform, caller: Caller, query: DepositsQuery) -> AdminDepositsOut:
    found = platform.deposits.all(query.status)
    return AdminDepositsOut(deposits=[DepositOut.of(d) for d in found], totals=[
        DepositTotalsOut(token=t.token, deposits=t.deposits, amount=str(t.amount), credits=s.Money.of(t.credits),
                         parked=t.parked) for t in deposit_totals(found)], scanning=platform.deposits.configured)


@routes.route("POST", f"{V1}/admin/deposits/{{depositId}}/credit", summary="Credit a parked deposit to a user "
              "(admins)", auth="admin", body=CreditDepositIn, response=DepositOut, errors=(404, 409, 503),
              path_schemas={"depositId": {"type": "string", "pattern": DEPOSIT_ID}})
def credit_deposit(platform: Platform, caller: Caller, depositId: str, body: CreditDepositIn) -> DepositOut:
    return DepositOut.of(platform.deposits.credit_parked(depositId, body.uid, caller.uid))


@routes.route("POST", f"{V1}/admin/deposits/{{depositId}}/refund", summary="Record that a parked deposit was sent "
              "back to its sender (admins)", auth="admin", body=RefundDepositIn, response=DepositOut,
              errors=(404, 409), path_schemas={"depositId": {"type": "string", "pattern": DEPOSIT_ID}})
def refund_deposit(platform: Platform, caller: Caller, depositId: str, body: RefundDepositIn) -> DepositOut:
    return DepositOut.of(platform.deposits.refund_parked(depositId, caller.uid, body.note))


@routes.route("POST", f"{V1}/admin/deposits/scan", summary="Scan the chain for deposits now (admins; the scanner "
              "also runs on its own)", auth="admin", response=ScanOut, errors=(503,))
def scan_deposits(platform: Platform, caller: Caller) -> ScanOut:
    report = platform.deposits.scan()
    return ScanOut(first=report.first, last=report.last, head=report.head, credited=report.credited,
                   parked=report.parked, dust=report.dust, seen=report.seen, reorganised=report.reorganised)
