// Crypto top-ups: link a wallet by Sign-In with Ethereum through the browser's wallet (window.ethereum, EIP-1193),
// then send ETH or a listed token from it to the deposit address (shown with a QR code). Transfers on their way show
// their confirmations; credited ones their credits. Credits come from the server's scan of the chain, never from here.
import qrcode from "qrcode-generator";
import { useEffect } from "preact/hooks";
import { api } from "../api.js";
import { Empty, Loading, Problem, TableFrame, credits, useAction, useLoad, when } from "../ui.jsx";

const POLL_MS = 15000; // how often transfers on their way are looked at again

/** A QR code drawn as one SVG path (EIP-681: `ethereum:<address>@<chain id>`), with its text as its label. */
export function QrCode({ text, label }) {
  const qr = qrcode(0, "M");
  qr.addData(text);
  qr.make();
  const n = qr.getModuleCount();
  const cells = [];
  for (let row = 0; row < n; row++) {
    for (let col = 0; col < n; col++) if (qr.isDark(row, col)) cells.push(`M${col} ${row}h1v1h-1z`);
  }
  return <svg class="qr" viewBox={`-2 -2 ${n + 4} ${n + 4}`} width="168" height="168" role="img" aria-label={label}
    data-testid="deposit-qr"><rect x="-2" y="-2" width={n + 4} height={n + 4} fill="#fff" />
    <path d={cells.join("")} fill="#000" /></svg>;
}

/** Base units (wei, or a token's) as a decimal amount of whole units. */
export function units(amount, decimals) {
  const digits = String(amount).padStart(decimals + 1, "0");
  const whole = digits.slice(0, digits.length - decimals);
  const fraction = digits.slice(digits.length - decimals).replace(/0+$/, "");
  return fraction ? `${whole}.${fraction}` : whole;
}

const hexOf = (text) => "0x" + Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0"))
  .join("");

async function linkWallet() {
  const wallet = window.ethereum;
  if (!wallet) {
    throw new Error("no browser wallet was found: install one (such as MetaMask), or open this page in your " +
      "wallet's browser");
  }
  const [address] = await wallet.request({ method: "eth_requestAccounts" });
  const nonce = await api("POST", "/wallets/nonce", { address });
  const signature = await wallet.request({ method: "personal_sign", params: [hexOf(nonce.message), address] });
  return api("POST", "/wallets", { message: nonce.message, signature });
}

function decimalsOf(setup, symbol) {
  return (setup.tokens.find((t) => t.symbol === symbol) || { decimals: 18 }).decimals;
}

/** The crypto section, where a chain is read here: nothing else is asked (and nothing polled) before that is known. */
export function CryptoTopUp() {
  const setup = useLoad(() => api("GET", "/wallets"));
  if (setup.loading) return <Loading what="crypto top-ups" />;
  if (setup.error) return <Problem error={setup.error} />;
  if (!setup.data.chainId || !setup.data.depositAddress) return null; // not offered on this platform
  return <CryptoOffered setup={setup} />;
}

function CryptoOffered({ setup }) {
  const deposits = useLoad(() => api("GET", "/deposits"));
  const pending = useLoad(() => api("GET", "/deposits/pending"));
  const [link, linking, linkError] = useAction(async () => { await linkWallet(); setup.reload(); });
  const [unlink, unlinking, unlinkError] = useAction(async (address) => {
    await api("DELETE", `/wallets/${address}`);
    setup.reload();
  });
  useEffect(() => {
    const timer = setInterval(() => { pending.reload(); deposits.reload(); }, POLL_MS);
    return () => clearInterval(timer);
  }, []);
  const s = setup.data;
  const linked = s.wallets.length > 0;
  return <section class="card" aria-labelledby="crypto-title">
    <h2 id="crypto-title">Pay with crypto</h2>
    <p>Link the wallet you will pay from: your wallet asks you to sign a message (no transaction, no fee). Then send
      ETH or a listed token from it to the deposit address below. Credits arrive once the transfer has{" "}
      {s.confirmations} confirmations.</p>
    <Problem error={linkError || unlinkError} />
    <h3>Your wallets</h3>
    {!linked ? <Empty>No wallet linked yet.</Empty> : <ul class="wallets">{s.wallets.map((w) =>
      <li key={w.address} data-testid="wallet"><code>{w.address}</code>{" "}
        <button type="button" disabled={unlinking} onClick={() => unlink(w.address)}
          aria-label={`Unlink wallet ${w.address}`}>Unlink</button></li>)}</ul>}
    <button type="button" disabled={linking} onClick={link}>{linking ? "Waiting for your wallet…" :
      "Link a wallet"}</button>
    {linked && <>
      <h3>Send to</h3>
      <p><code data-testid="deposit-address">{s.depositAddress}</code> (chain {s.chainId})</p>
      <QrCode text={`ethereum:${s.depositAddress}@${s.chainId}`}
        label={`QR code of the deposit address ${s.depositAddress} on chain ${s.chainId}`} />
      <ul class="rates">{s.tokens.map((t) => <li key={t.symbol}>
        1 {t.symbol} buys {credits(t.creditsPerUnit)}{t.contract ? <> (token contract <code>{t.contract}</code>)</>
          : ""}</li>)}</ul>
      <p class="muted">Send only from a linked wallet: a transfer from any other address waits for an admin.</p>
    </>}
    <h3>On their way</h3>
    {pending.loading ? <Loading what="transfers on their way" /> : pending.error ? <Problem error={pending.error} /> :
      !pending.data.deposits.length ? <Empty>Nothing on its way.</Empty> : <ul>{pending.data.deposits.map((p) =>
        <li key={p.txHash} data-testid="pending-deposit">{units(p.amount, decimalsOf(s, p.token))} {p.token}:{" "}
          {Math.min(p.confirmations, p.confirmationsNeeded)} of {p.confirmationsNeeded} confirmations
          {p.confirmations >= p.confirmationsNeeded ? ", crediting…" : ""}</li>)}</ul>}
    <h3>Your deposits</h3>
    {deposits.loading ? <Loading what="deposits" /> : deposits.error ? <Problem error={deposits.error} /> :
      !deposits.data.deposits.length ? <Empty>No deposits yet.</Empty> : <TableFrame label="Deposits"><table>
        <thead><tr><th scope="col">Seen</th><th scope="col" class="num">Sent</th><th scope="col">Status</th>
          <th scope="col" class="num">Credits</th></tr></thead>
        <tbody>{deposits.data.deposits.map((d) => <tr key={d.id} data-testid="deposit-row">
          <td>{when(d.seenAt)}</td><td class="num">{units(d.amount, d.decimals)} {d.token}</td>
          <td>{d.status}</td><td class="num">{credits(d.credits)}</td></tr>)}</tbody></table></TableFrame>}
  </section>;
}
