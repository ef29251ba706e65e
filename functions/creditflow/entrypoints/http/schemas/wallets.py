"""Bodies of crypto top-ups (wallet_routes): linking wallets by Sign-In with Ethereum, the caller's deposits, and
the admins' review of deposits and scans."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ....domain.crypto import Deposit, DepositTotals, Token, Wallet
from .common import Money, Out, Strict
from .patterns import USER_ID

ADDRESS = r"^0x[0-9a-fA-F]{40}$"


class NonceIn(Strict):
    address: str = Field(pattern=ADDRESS, description="the wallet to link (EIP-55 checksum, or all lower case)",
                         examples=["0x52908400098527886E0F7030069857D2E4169EE7"])


class NonceOut(Out):
    nonce: str
    message: str = Field(description="the exact EIP-4361 text to sign with the wallet (personal_sign)")
    chain_id: int
    expires_at: str


class LinkIn(Strict):
    message: str = Field(min_length=1, max_length=2000, description="the message given with the nonce, unchanged")
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$", description="its signature by the wallet (65 bytes)")


class WalletOut(Out):
    address: str
    chain_id: int
    linked_at: str

    @classmethod
    def of(cls, wallet: Wallet) -> WalletOut:
        return cls(address=wallet.address, chain_id=wallet.chain_id, linked_at=wallet.linked_at)


class TokenOut(Out):
    symbol: str
    contract: str | None = Field(description="the ERC-20 contract; null for the chain's own coin (ETH)")
    decimals: int
    credits_per_unit: Money = Field(description="credits for one whole unit (10^decimals base units)")

    @classmethod
    def of(cls, token: Token) -> TokenOut:
        return cls(symbol=token.symbol, contract=token.contract, decimals=token.decimals,
                   credits_per_unit=Money.of(token.micros_per_unit))


class WalletsOut(Out):
    wallets: list[WalletOut]
    deposit_address: str | None = Field(description="where to send ETH or a listed token from a linked wallet")
    chain_id: int | None
    tokens: list[TokenOut]
    confirmations: int = Field(description="blocks a deposit waits for before it is credited")


class DepositOut(Out):
    id: str = Field(description="chain id : transaction hash : the transfer's place among the transaction's token "
                                "transfers to the deposit address, from 0 (native for ETH)")
    chain_id: int
    tx_hash: str
    block_number: int
    sender: str
    token: str
    amount: str = Field(description="base units sent (wei for ETH), as decimal digits")
    decimals: int = Field(description="the token's decimals: amount ÷ 10^decimals is in whole units")
    status: str = Field(description="credited, parked (sender not linked, or the ledger refused it: an admin "
                                    "reviews it), refunded or dust")
    credits: Money
    seen_at: str
    reviewed_by: str | None = None
    note: str | None = None

    @classmethod
    def of(cls, d: Deposit) -> DepositOut:
        return cls(id=d.id, chain_id=d.chain_id, tx_hash=d.tx_hash, block_number=d.block_number, sender=d.sender,
                   token=d.token, amount=str(d.amount), decimals=d.decimals, status=d.status,
                   credits=Money.of(d.credits), seen_at=d.seen_at, reviewed_by=d.reviewed_by, note=d.note)


class DepositsOut(Out):
    deposits: list[DepositOut]


class DepositTotalsOut(Out):
    token: str
    deposits: int = Field(description="deposits credited")
    amount: str = Field(description="base units received by credited deposits, as decimal digits")
    credits: Money
    parked: int = Field(description="deposits waiting for an admin")

    @classmethod
    def of(cls, t: DepositTotals) -> DepositTotalsOut:
        return cls(token=t.token, deposits=t.deposits, amount=str(t.amount), credits=Money.of(t.credits),
                   parked=t.parked)


class AdminDepositsOut(Out):
    deposits: list[DepositOut]
    totals: list[DepositTotalsOut] = Field(description="per coin or token, over the deposits listed")
    scanning: bool = Field(description="whether a chain is configured to scan (POST /admin/deposits/scan: 503 "
                                       "when not)")


class PendingDepositOut(Out):
    tx_hash: str
    block_number: int
    sender: str
    token: str
    amount: str = Field(description="base units sent, as decimal digits")
    confirmations: int
    confirmations_needed: int = Field(description="confirmations it needs before it is credited")


class PendingDepositsOut(Out):
    deposits: list[PendingDepositOut]


class DepositsQuery(Strict):
    model_config = Strict.model_config | {"strict": False}  # a query's values are text
    status: Literal["credited", "parked", "refunded", "dust"] | None = None


class CreditDepositIn(Strict):
    uid: str = Field(min_length=1, max_length=128, pattern=USER_ID, description="the user the deposit is credited "
                     "to")


class RefundDepositIn(Strict):
    note: str = Field(min_length=1, max_length=500, description="how it was sent back (the refund's tx hash)")


class ScanOut(Out):
    first: int
    last: int = Field(description="the last block read (below first when none was due)")
    head: int
    credited: int
    parked: int
    dust: int
    seen: int
    reorganised: bool
