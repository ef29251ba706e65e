// Keeps the keyboard's place when the page takes the focus away. A button pressed is disabled while its action runs
// ("Claiming…"), and often removed by what the action did (a task's Cancel once it is cancelled, a key's Revoke once
// revoked): Chromium then leaves the focus on <body>, and a keyboard or screen-reader user has lost their place. The
// focus goes back to the button when it is enabled again; when it is gone, to what its card says now (the message the
// action left) or else to the card's heading.

const CARD = "article, section, form, .card, [role=dialog], main";
// what an action leaves to read: its error, or its outcome (a live status such as "Updates: Live" is not one)
const MESSAGE = "[role=alert], [role=status].success, [role=status].error, [role=status].notice";

let lost = null; // { element, ancestors, disabled }: a focus the page took away, until it is placed again

/** Where the focus goes when the element that had it is gone: the first of its `ancestors` still in the page says. */
function focusTarget(ancestors) {
  const anchor = ancestors.find((node) => node.isConnected);
  const card = anchor?.closest(CARD) || document.querySelector("main");
  if (!card) return null;
  const ownMessage = [...card.querySelectorAll(MESSAGE)].find((m) => m.parentElement.closest(CARD) === card &&
    m.getClientRects().length > 0);
  if (ownMessage) return ownMessage;
  const heading = [...card.querySelectorAll("h1, h2, h3, h4")].find((h) => h.closest(CARD) === card);
  return heading || card;
}

/** Focus `element`, made focusable from script (not by Tab) when it is not already. */
function focusOn(element) {
  if (!element.matches("a[href], button, input, select, textarea, [tabindex]")) element.setAttribute("tabindex", "-1");
  element.focus();
  return document.activeElement === element;
}

function place() {
  if (!lost) return;
  const active = document.activeElement;
  if (active && active !== document.body) { // the focus is somewhere already: the window's, or the user moved it
    lost = null;
    return;
  }
  const { element, ancestors, disabled } = lost;
  if (element.isConnected) {
    if (element.disabled) return; // busy: wait until it is enabled again, or removed
    lost = null;
    // enabled again: back to it (one that was never disabled, the user left: a click elsewhere)
    if (!disabled || focusOn(element)) return;
  }
  lost = null;
  const target = focusTarget(ancestors);
  if (target) focusOn(target);
}

/** Listen for the focus taken away, once per page (mount calls it). */
export function keepFocus() {
  document.addEventListener("focusout", (event) => {
    const element = event.target;
    if (event.relatedTarget || !(element instanceof Element)) return;
    const ancestors = [];
    for (let node = element.parentElement; node; node = node.parentElement) ancestors.push(node);
    lost = { element, ancestors, disabled: element.disabled === true };
    setTimeout(place, 0); // after the render that removed or disabled it
  });
  document.addEventListener("focusin", () => { lost = null; }); // placed: by the user, or by place()
  new MutationObserver(() => place()).observe(document.body, { subtree: true, childList: true, attributes: true,
    attributeFilter: ["disabled"] });
}
