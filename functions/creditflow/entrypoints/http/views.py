"""What the services return, as the API's response models: shared by the routes, the admin console's reads and the
command line's JSON output, so each thing is said one way everywhere."""

from __future__ import annotations

from typing import Any

from ...bootstrap import Platform
from ...domain.balance import Balance
from ...domain.errors import InsufficientFunds, LedgerError
from ...domain.payments import Pack, covering
from ...domain.tasks import task_of_entry
from ...services.chat_results import Completion, StreamEnd
from ...services.credit_results import Granted
from ...services.integrity import AuditReport, ConsistencyProof, Verification
from ...services.mirror import MirroredBalance
from ...services.welcome import WelcomeGrant, WelcomeOffer
from . import schemas as s


def balance_out(b: Balance) -> s.BalanceOut:
    lots = [s.LotOut(id=lot.id, kind=lot.kind, available=s.Money.of(lot.available), held=s.Money.of(lot.held),
                     priority=lot.priority, expires_at=lot.expires_at) for lot in b.lots]
    return s.BalanceOut(account=b.account, available=s.Money.of(b.available), held=s.Money.of(b.held),
                        total=s.Money.of(b.available + b.held), version=b.version, updated_at=b.updated_at, lots=lots)


def entry_out(entry: Any) -> s.EntryOut:
    fields = entry.fields()
    released = fields.get("released")
    return s.EntryOut(id=entry.id, seq=entry.seq, kind=entry.kind, at=entry.at,
                      amount=s.Money.of(int(fields["amount"])),
                      counterparty=fields["counterparty"], hold=fields.get("hold"), lot=fields.get("lot"),
                      released=s.Money.of(int(released)) if released is not None else None,
                      reason=fields.get("reason"), reference=fields.get("reference"), memo=fields.get("memo", {}),
                      task=task_of_entry(fields.get("key", ""), fields.get("memo", {})),
                      balance_after={k: s.Money.of(int(v)) for k, v in fields["balance"].items()}, hash=entry.hash)


def mirror_out(b: MirroredBalance) -> s.MirrorOut:
    return s.MirrorOut(available=s.Money.of(b.available), held=s.Money.of(b.held), version=b.version,
                       updatedAt=b.updated_at)


def grant_out(account: str, amount: int, result: Granted) -> s.GrantOut:
    return s.GrantOut(account=account, entry=result.entry, lot=result.lot, granted=s.Money.of(amount),
                      available=s.Money.of(result.available), replayed=result.replayed)


def welcome_out(result: WelcomeGrant) -> s.WelcomeOut:
    return s.WelcomeOut(granted=s.Money.of(result.granted), entry=result.entry, lot=result.lot,
                        expires_at=result.expires_at, available=s.Money.of(result.available))


def welcome_offer_out(offer: WelcomeOffer) -> s.WelcomeOfferOut:
    return s.WelcomeOfferOut(amount=s.Money.of(offer.amount), expiry_days=offer.expiry_days,
                             claimable=offer.claimable, reason=offer.reason, detail=offer.detail)


def verification_out(v: Verification) -> s.VerificationOut:
    return s.VerificationOut(ok=v.ok, entry=s.StoredEntryOut.model_validate(v.entry.to_dict()),
                             previous_entry=v.previous_entry, signature_ok=v.signature_ok, chain_ok=v.chain_ok,
                             included=v.included, leaf_index=v.leaf_index, tree_size=v.tree_size,
                             inclusion_proof=v.inclusion_proof, checkpoint=v.checkpoint,
                             findings=[f.to_dict() for f in v.findings])


def consistency_out(proof: ConsistencyProof) -> s.ConsistencyOut:
    return s.ConsistencyOut(from_=proof.from_size, to=proof.to_size, from_root=proof.from_root,
                            to_root=proof.to_root, from_checkpoint=proof.from_checkpoint,
                            to_checkpoint=proof.to_checkpoint, proof=proof.proof, consistent=proof.consistent)


def audit_out(report: AuditReport) -> s.AuditOut:
    return s.AuditOut(ok=report.ok, scope=report.scope, accounts=report.accounts, entries=report.entries,
                      tree_size=report.tree_size, checkpoint_size=report.checkpoint_size, proved=report.proved,
                      totals={name: s.Money.of(micros) for name, micros in report.totals.items()},
                      findings=[f.to_dict() for f in report.findings],
                      idempotency_conflicts=report.idempotency_conflicts)


def packs_covering(packs: tuple[Pack, ...], shortfall: int) -> list[dict[str, Any]]:
    """The credit packs that cover a shortfall, each with how many of it cover it: 1 for every pack large enough,
    else as many of the largest pack as it takes."""
    return [{"id": pack.id, "credits": s.Money.of(pack.credits).model_dump(),
             "price": {"amount": pack.price, "currency": pack.currency}, "quantity": quantity}
            for pack, quantity in covering(packs, shortfall)]


def reply_fields(result: Completion | StreamEnd) -> dict[str, Any]:
    """What a chat reply and a stream's `done` event say of the call: the model, the usage and the charge."""
    memory = result.memory
    return {"model": result.model, "provider": result.provider, "demo": result.demo,
            "finish_reason": result.finish_reason,
            "usage": s.UsageOut(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                                reported_by_provider=result.usage_reported),
            "charged": s.Money.of(result.charged), "estimated": s.Money.of(result.estimated),
            "reservationId": result.reservation, "entry": result.entry, "replayed": result.replayed,
            "shortfall": s.Money.of(result.shortfall) if result.shortfall else None,
            "memory": s.MemoryOut(buffered=memory.buffered, summarised=memory.summarised, recalled=memory.recalled,
                                  charged=s.Money.of(memory.charged)) if memory else None}


def crypto_covering(platform: Platform, shortfall: int) -> list[dict[str, Any]]:
    """What to send to the deposit address, in each coin and token taken, for credits that cover a shortfall."""
    rules = platform.deposits.rules
    if not platform.deposits.configured or rules is None or shortfall <= 0:
        return []
    return [{"token": token.symbol, "contract": token.contract, "chainId": rules.chain_id,
             "depositAddress": rules.address, "amount": str(amount), "decimals": token.decimals}
            for token, amount in rules.covering(shortfall)]


def pack_methods(platform: Platform) -> list[str]:
    """How a pack can be paid for here: the methods offered whose keys are set (no card without Stripe's)."""
    return [m for m in platform.settings.payment_methods if m != "stripe" or platform.payments.configured]


def payment_methods(platform: Platform) -> list[str]:
    """How credits can be bought here: a pack by the methods set up, and crypto where a chain is read."""
    return pack_methods(platform) + (["crypto"] if platform.deposits.configured else [])


def payment_options(platform: Platform, error: LedgerError) -> dict[str, Any]:
    """What a refusal for want of credits adds to its problem: the packs that would cover it and how to pay,
    by card or by sending coin or tokens."""
    if not isinstance(error, InsufficientFunds):
        return {}
    shortfall = int(error.context.get("shortfall", 0))
    return {"packs": packs_covering(platform.payments.packs, shortfall), "paymentMethods": payment_methods(platform),
            "crypto": crypto_covering(platform, shortfall)}
