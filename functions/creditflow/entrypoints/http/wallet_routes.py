"""Crypto top-ups: wallets linked by Sign-In with Ethereum under /api/v1/wallets, the caller's deposits, and the
admins' review of deposits from wallets nobody linked (credit to a user, or mark refunded) and scans on demand."""

from __future__ import annotations

from werkzeug.routing import BaseConverter

from ...bootstrap import Platform
from ...domain.callers import Caller
from ...domain.crypto import deposit_totals
from . import schemas as s
from .api import Routes

V1 = "/api/v1"
DEPOSIT_ID = r"^[0-9]{1,20}:0x[0-9a-f]{64}:([0-9]{1,6}|native)$"


class AddressConverter(BaseConverter):
    """A wallet address in a path (so that /wallets/{address} never takes /wallets/nonce)."""

    regex = s.ADDRESS[1:-1]


routes = Routes()


@routes.route("POST", f"{V1}/wallets/nonce", summary="A single-use nonce (10 minutes) and the Sign-In with Ethereum "
              "message to sign for linking a wallet", body=s.NonceIn, response=s.NonceOut, errors=(422, 503))
def wallet_nonce(platform: Platform, caller: Caller, body: s.NonceIn) -> s.NonceOut:
    challenge = platform.wallets.challenge(caller.uid, body.address)
    return s.NonceOut(nonce=challenge.nonce, message=challenge.message, chain_id=challenge.chain_id,
                      expires_at=challenge.expires_at)


@routes.route("POST", f"{V1}/wallets", summary="Link the wallet that signed the message (its deposits are credited "
              "to the caller)", body=s.LinkIn, response=s.WalletOut, errors=(409, 422, 503))
def link_wallet(platform: Platform, caller: Caller, body: s.LinkIn) -> s.WalletOut:
    return s.WalletOut.of(platform.wallets.link(caller.uid, body.message, body.signature))


@routes.route("GET", f"{V1}/wallets", summary="The caller's linked wallets, where to send deposits and what is taken",
              response=s.WalletsOut)
def list_wallets(platform: Platform, caller: Caller) -> s.WalletsOut:
    rules = platform.deposits.rules
    return s.WalletsOut(wallets=[s.WalletOut.of(w) for w in platform.wallets.mine(caller.uid)],
                        deposit_address=rules.address if rules else None, chain_id=platform.settings.crypto_chain_id,
                        tokens=[s.TokenOut.of(t) for t in rules.tokens] if rules else [],
                        confirmations=platform.settings.crypto_confirmations)


@routes.route("DELETE", f"{V1}/wallets/{{address}}", summary="Unlink one of the caller's wallets (deposits from it "
              "are then parked for an admin)", response=s.WalletsOut, errors=(404, 422),
              converters={"address": "wallet_address"},
              path_schemas={"address": {"type": "string", "pattern": s.ADDRESS}})
def unlink_wallet(platform: Platform, caller: Caller, address: str) -> s.WalletsOut:
    platform.wallets.unlink(caller.uid, address)
    return list_wallets(platform, caller)


@routes.route("GET", f"{V1}/deposits", summary="The caller's crypto deposits, newest block first",
              response=s.DepositsOut)
def my_deposits(platform: Platform, caller: Caller) -> s.DepositsOut:
    return s.DepositsOut(deposits=[s.DepositOut.of(d) for d in platform.deposits.mine(caller.uid)])


@routes.route("GET", f"{V1}/deposits/pending", summary="The caller's transfers on chain not credited yet, with their "
              "confirmations (read from the chain now)", response=s.PendingDepositsOut, errors=(502, 503))
def pending_deposits(platform: Platform, caller: Caller) -> s.PendingDepositsOut:
    return s.PendingDepositsOut(deposits=[s.PendingDepositOut(
        tx_hash=p.transfer.tx_hash, block_number=p.transfer.block_number, sender=p.transfer.sender, token=p.token,
        amount=str(p.transfer.amount), confirmations=p.confirmations,
        confirmations_needed=p.needed)
        for p in platform.deposits.pending(caller.uid)])


@routes.route("GET", f"{V1}/admin/deposits", summary="Crypto deposits, newest block first, of one status or all "
              "(admins), with totals per coin or token", auth="admin", query=s.DepositsQuery,
              response=s.AdminDepositsOut)
def admin_deposits(platform: Platform, caller: Caller, query: s.DepositsQuery) -> s.AdminDepositsOut:
    found = platform.deposits.all(query.status)
    return s.AdminDepositsOut(deposits=[s.DepositOut.of(d) for d in found],
                              totals=[s.DepositTotalsOut.of(t) for t in deposit_totals(found)],
                              scanning=platform.deposits.configured)


@routes.route("POST", f"{V1}/admin/deposits/{{depositId}}/credit", summary="Credit a parked deposit to a user "
              "(admins)", auth="admin", body=s.CreditDepositIn, response=s.DepositOut, errors=(404, 409, 503),
              path_schemas={"depositId": {"type": "string", "pattern": DEPOSIT_ID}})
def credit_deposit(platform: Platform, caller: Caller, depositId: str, body: s.CreditDepositIn) -> s.DepositOut:
    return s.DepositOut.of(platform.deposits.credit_parked(depositId, body.uid, caller.uid))


@routes.route("POST", f"{V1}/admin/deposits/{{depositId}}/refund", summary="Record that a parked deposit was sent "
              "back to its sender (admins)", auth="admin", body=s.RefundDepositIn, response=s.DepositOut,
              errors=(404, 409), path_schemas={"depositId": {"type": "string", "pattern": DEPOSIT_ID}})
def refund_deposit(platform: Platform, caller: Caller, depositId: str, body: s.RefundDepositIn) -> s.DepositOut:
    return s.DepositOut.of(platform.deposits.refund_parked(depositId, caller.uid, body.note))


@routes.route("POST", f"{V1}/admin/deposits/scan", summary="Scan the chain for deposits now (admins; the scanner "
              "also runs on its own)", auth="admin", response=s.ScanOut, errors=(503,))
def scan_deposits(platform: Platform, caller: Caller) -> s.ScanOut:
    report = platform.deposits.scan()
    return s.ScanOut(first=report.first, last=report.last, head=report.head, credited=report.credited,
                     parked=report.parked, dust=report.dust, seen=report.seen, reorganised=report.reorganised)
