"""Crypto top-ups: wallets linked by Sign-In with Ethereum (EIP-4361), the coin and tokens taken and their rates, and
the deposits found on chain with what became of each. Integers only: wei and token base units become micro-credits
by the configured rate, rounded down, the remainder recorded."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from .errors import LedgerError
from .timefmt import iso

NATIVE = -1  # the log index of a transfer of the chain's own coin (ETH), which has no log
CREDITED, PARKED, REFUNDED, DUST = "credited", "parked", "refunded", "dust"  # a deposit's states
NONCE = re.compile(r"[A-Za-z0-9]{8,64}")
SIGNATURE = re.compile(r"0x[0-9a-fA-F]{130}")
HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
SYMBOL = re.compile(r"[A-Z][A-Z0-9]{0,10}")
STATEMENT = "Link this wallet to your Creditflow account: deposits from it are credited to you."


class InvalidWallet(LedgerError):
    code = "invalid-wallet"
    title = "Wallet refused"


class WalletTaken(LedgerError):
    code = "wallet-taken"
    title = "Wallet linked to another user"


class UnknownWallet(LedgerError):
    code = "unknown-wallet"
    title = "Unknown wallet"


class CryptoNotConfigured(LedgerError):
    code = "crypto-not-configured"
    title = "Crypto top-ups are not configured"


class TokenNotAccepted(LedgerError):
    """A parked deposit's coin or token was taken off CRYPTO_TOKENS since it arrived: its rate is unknown."""

    code = "token-not-accepted"
    title = "Token no longer accepted"


class UnknownDeposit(LedgerError):
    code = "unknown-deposit"
    title = "Unknown deposit"


class DepositReviewed(LedgerError):
    code = "deposit-reviewed"
    title = "Deposit no longer waiting for review"


class ChainUnavailable(LedgerError):
    code = "chain-unavailable"
    title = "The chain's node cannot be reached"


class ChainMismatch(LedgerError):
    """The chain does not say what the configuration assumes (another chain id, a token's decimals): nothing is
    credited until the configuration is put right."""

    code = "chain-mismatch"
    title = "The chain disagrees with the configuration"


@dataclass(frozen=True)
class Token:
    """A coin or token taken for credits: `contract` is None for the chain's own coin."""

    symbol: str
    contract: str | None
    decimals: int
    micros_per_unit: int  # micro-credits for one whole unit (10**decimals base units)

    def __post_init__(self) -> None:
        if not SYMBOL.fullmatch(self.symbol):
            raise ValueError(f"token symbol {self.symbol!r}: upper-case letters and digits, at most 11")
        if not 0 <= self.decimals <= 36 or self.micros_per_unit <= 0:
            raise ValueError(f"token {self.symbol}: decimals 0-36 and a positive rate")

    def credits_for(self, amount: int) -> tuple[int, int]:
        """Micro-credits for `amount` base units, rounded down, and the remainder left over: a numerator over
        10**decimals micro-credits, recorded with the deposit."""
        return divmod(amount * self.micros_per_unit, 10 ** self.decimals)


@dataclass(frozen=True)
class Transfer:
    """A transfer to the deposit address as the chain shows it: an ETH transaction, or an ERC-20 Transfer log."""

    chain_id: int
    tx_hash: str  # 0x and lower-case hex
    log_index: int  # the log's place in its block (where explorers show it); NATIVE for ETH
    block_number: int
    block_hash: str
    sender: str  # checksummed
    contract: str | None  # the token's contract; None for ETH
    amount: int  # wei or token base units
    place: int = 0  # a token transfer's place among its transaction's token transfers to the deposit address

    @property
    def id(self) -> str:
        """Its crediting key: (chain id, transaction hash, its place in the transaction). Not the log index: that
        is the log's place in its block, and a transaction a reorganisation moves to another block keeps its hash
        and its transfers, not their log indexes (a deposit credited before would be credited again)."""
        return deposit_id(self.chain_id, self.tx_hash, NATIVE if self.contract is None else self.place)


def deposit_id(chain_id: int, tx_hash: str, place: int) -> str:
    return f"{chain_id}:{tx_hash.lower()}:{'native' if place == NATIVE else place}"


@dataclass(frozen=True)
class Deposit:
    """A transfer seen on chain and what became of it: credited to the wallet's user, parked for an admin (sender
    not linked), refunded off-platform by an admin, or dust (worth less than one micro-credit)."""

    id: str
    chain_id: int
    tx_hash: str
    log_index: int
    block_number: int
    sender: str
    token: str  # symbol
    amount: int  # base units
    status: str
    seen_at: str
    uid: str | None = None
    credits: int = 0  # micro-credits granted
    rate: int = 0  # micro-credits per whole unit, at the time it was credited
    remainder: int = 0  # over 10**decimals micro-credits, not credited (rounding down)
    lot: str | None = None
    reviewed_by: str | None = None  # the admin who credited or refunded a parked deposit
    note: str | None = None
    decimals: int = 18  # the token's, so that credits × 10**decimals + remainder = amount × rate can be checked


@dataclass(frozen=True)
class Wallet:
    address: str
    uid: str
    chain_id: int
    linked_at: str


@dataclass(frozen=True)
class SignIn:
    """The parts of an EIP-4361 message that this platform sets."""

    domain: str  # host[:port] of the app asking for the signature
    uri: str
    chain_id: int


@dataclass(frozen=True)
class WalletChallenge:
    """A single-use nonce given to one user for one address, and the exact message to sign."""

    nonce: str
    uid: str
    address: str
    chain_id: int
    message: str
    issued_at: str
    expires_at: str


def sign_in_message(sign_in: SignIn, address: str, nonce: str, issued_at: datetime, expires_at: datetime) -> str:
    """The EIP-4361 text, field by field as the standard orders them."""
    return (f"{sign_in.domain} wants you to sign in with your Ethereum account:\n{address}\n\n{STATEMENT}\n\n"
            f"URI: {sign_in.uri}\nVersion: 1\nChain ID: {sign_in.chain_id}\nNonce: {nonce}\n"
            f"Issued At: {iso(issued_at)}\nExpiration Time: {iso(expires_at)}")


@dataclass(frozen=True)
class DepositRules:
    """What the scanner takes: on which chain, to which address, which coin and tokens, after how many blocks."""

    chain_id: int
    address: str  # the platform's deposit address, checksummed
    tokens: tuple[Token, ...]  # the coin (contract None) and the allowlisted tokens
    confirmations: int = 12
    start_block: int = 0  # where the first scan starts
    batch_blocks: int = 500  # blocks read per request

    def token(self, contract: str | None) -> Token | None:
        for token in self.tokens:
            if token.contract == contract:
                return token
        return None

    def by_symbol(self, symbol: str) -> Token:
        for token in self.tokens:
            if token.symbol == symbol:
                return token
        raise TokenNotAccepted(f"{symbol} is no longer among CRYPTO_TOKENS, so its rate is unknown: add it back to "
                               "credit this deposit, or send it back and record the refund", token=symbol)

    @property
    def contracts(self) -> tuple[str, ...]:
        return tuple(t.contract for t in self.tokens if t.contract is not None)

    def covering(self, shortfall: int) -> list[tuple[Token, int]]:
        """Each coin and token with the least amount of it (base units) whose credits cover `shortfall`."""
        return [(t, -(-shortfall * 10 ** t.decimals // t.micros_per_unit)) for t in self.tokens]

    def confirmed_up_to(self, head: int) -> int:
        """The newest block with enough confirmations (a block has one when it is the head)."""
        return head - self.confirmations + 1


@dataclass(frozen=True)
class DepositTotals:
    """What the admins' report adds up, per coin or token: deposits credited, base units received, credits."""

    token: str
    deposits: int
    amount: int
    credits: int
    parked: int  # deposits waiting for an admin


def deposit_totals(deposits: list[Deposit]) -> list[DepositTotals]:
    by: dict[str, list[Deposit]] = {}
    for d in deposits:
        by.setdefault(d.token, []).append(d)
    return [DepositTotals(token, sum(1 for d in ds if d.status == CREDITED),
                          sum(d.amount for d in ds if d.status == CREDITED),
                          sum(d.credits for d in ds if d.status == CREDITED),
                          sum(1 for d in ds if d.status == PARKED)) for token, ds in sorted(by.items())]
