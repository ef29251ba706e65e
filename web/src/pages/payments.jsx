// Buying credits: the packs, each paid for on Stripe's Checkout page, and the caller's payments with what became of
// them (refunds, disputes). Credits arrive when Stripe confirms the payment to the server, never from this page.
import { useEffect } from "preact/hooks";
import { api, newKey } from "../api.js";
import { Empty, Loading, Problem, TableFrame, credits, useAction, useHashQuery, useLoad, when } from "../ui.jsx";
import { useLive } from "./balance.jsx";
import { CryptoTopUp } from "./crypto.jsx";

/** A price in minor units (cents) in its currency. */
export function price({ amount, currency }) {
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency: currency.toUpperCase() })
      .format(amount / 100);
  } catch {
    return `${(amount / 100).toFixed(2)} ${currency.toUpperCase()}`;
  }
}

function status(p) {
  if (p.dispute) return `dispute ${p.dispute}`;
  if (p.refunded.amount >= p.price.amount) return "refunded";
  if (p.refunded.amount > 0) return `partly refunded (${price(p.refunded)})`;
  return "paid";
}

export function PaymentsPage({ session }) {
  const packs = useLoad(() => api("GET", "/payments/packs"));
  const payments = useLoad(() => api("GET", "/payments"));
  // Stripe often sends the buyer back before it confirms the payment: the list is read again as the balance moves
  const [mirror] = useLive(`balances/${session.uid}`);
  const version = mirror ? mirror.version : null;
  useEffect(() => { if (version != null) payments.reload(); }, [version]); // the list shown meanwhile stays
  const back = useHashQuery();
  const cards = packs.data?.methods.includes("stripe"); // Stripe's keys are set here
  const [buy, buying, buyError] = useAction(async (pack) => {
    const page = await api("POST", "/payments/stripe/checkout", { pack }, { idempotencyKey: newKey("checkout") });
    location.assign(page.url);
  });
  return <>
    {back.has("paid") && <div class="success" role="status">Thank you. Your credits are added as soon as Stripe
      confirms the payment; the balance updates by itself.</div>}
    {back.has("cancelled") && <div class="card" role="status">Checkout was cancelled: nothing was charged.</div>}
    <section class="card" aria-labelledby="packs-title">
      <h2 id="packs-title">Buy credits</h2>
      <Problem error={buyError} />
      {packs.loading ? <Loading what="packs" /> : packs.error ? <Problem error={packs.error} /> : <>
        {cards ? <p>You pay on Stripe's Checkout page; Creditflow never sees your
          card.</p> : <p class="muted" data-testid="cards-off">Card payments are not set up on this deployment (its
          operator sets Stripe's keys).</p>}
        <ul class="packs">{packs.data.packs.map((p) => <li key={p.id} data-testid="pack">
          <strong>{credits(p.credits)}</strong> for {price(p.price)}{" "}
          {cards && <button type="button" disabled={buying} onClick={() => buy(p.id)}
            aria-label={`Pay by card: ${p.credits.credits} credits for ${price(p.price)}`}>Pay by card</button>}
        </li>)}</ul></>}
    </section>
    <CryptoTopUp />
    <section class="card" aria-labelledby="payments-title">
      <h2 id="payments-title">Your payments</h2>
      {payments.loading && !payments.data ? <Loading what="payments" /> :
        payments.error ? <Problem error={payments.error} /> :
        !payments.data.payments.length ? <Empty>No payments yet.</Empty> : <TableFrame label="Payments"><table>
          <thead><tr><th scope="col">When</th><th scope="col" class="num">Credits</th>
            <th scope="col" class="num">Paid</th><th scope="col">Status</th>
            <th scope="col" class="num">Taken back</th></tr></thead>
          <tbody>{payments.data.payments.map((p) => <tr key={p.id} data-testid="payment-row">
            <td>{when(p.createdAt)}</td><td class="num">{credits(p.credits)}</td><td class="num">{price(p.price)}</td>
            <td>{status(p)}</td><td class="num">{credits(p.takenBack)}</td></tr>)}</tbody></table></TableFrame>}
    </section>
  </>;
}
