// Drives the cashier screen in headless Debian chromium through
// playwright-core. Run by screen_test.go, which starts a real agent and a
// control server: node screen.mjs SCREEN_URL CONTROL_URL [SCREENSHOT_DIR]
// Each step prints "ok <step>"; any failure exits non-zero with the reason.
import { act as actOn, run, waitText as waitFor } from "./drive.mjs";

const [url, control, shots] = process.argv.slice(2);
if (!url || !control) {
  console.error("usage: node screen.mjs SCREEN_URL CONTROL_URL [SCREENSHOT_DIR]");
  process.exit(2);
}
const timeout = 10000;
const act = (what) => actOn(control, what);
const waitText = (page, id, want) => waitFor(page, id, want, timeout);

async function shot(page, name) {
  if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}

await run(async (page) => {
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(url);

  await waitText(page, "sync", "Online");
  await page.locator("[data-testid=member-empty]").waitFor({ state: "visible", timeout });
  if (await page.locator("[data-testid=offline-banner]").isVisible()) throw new Error("offline banner shown while online");
  console.log("ok screen loads online with no member");

  await waitText(page, "peers", "till-b: online, 0 operations wait");
  await waitText(page, "peers", "till-c: unreachable (never seen)");
  console.log("ok the store's other tills show: one online, one never seen");
  await act("peeroffline");
  await waitText(page, "peers", "till-b: offline, 4 operations wait");
  console.log("ok a till that lost the cloud shows offline with its backlog");

  await act("tap");
  await waitText(page, "member-card", "nfc:••••E5F6");
  await waitText(page, "member-balance", "250 pts");
  await waitText(page, "member-tier", "Silver");
  const html = await page.content();
  if (html.includes("04A1B2C3D4E5F6")) throw new Error("the page holds the card UID in the clear");
  console.log("ok a card tap makes the member appear");
  await shot(page, "member");

  await act("quote");
  await waitText(page, "basket-points", "12");
  console.log("ok the basket's points appear");

  await act("outage");
  await page.locator("[data-testid=offline-banner]").waitFor({ state: "visible", timeout });
  await waitText(page, "offline-text", "0 operations wait");
  await waitText(page, "sync", "Offline");
  console.log("ok a cloud outage shows the offline banner with the backlog");
  await shot(page, "offline");

  await act("checkout");
  await waitText(page, "receipts", "12");
  await page.locator("[data-testid=member-empty]").waitFor({ state: "visible", timeout });
  // The backlog is the journal's count: the sale made offline waits.
  await waitText(page, "offline-text", "1 operation waits");
  console.log("ok a checkout shows its receipt, ends the session and joins the backlog");

  // The receipt as a picture, rendered by the agent and loaded by the page.
  const img = page.locator("[data-testid=receipt-png]").first();
  await img.waitFor({ state: "visible", timeout });
  await page.waitForFunction(() => {
    const i = document.querySelector("[data-testid=receipt-png]");
    return i && i.complete && i.naturalWidth > 0;
  }, null, { timeout });
  const src = await img.getAttribute("src");
  const res = await page.request.get(new URL(src, url).href);
  if (res.status() !== 200 || res.headers()["content-type"] !== "image/png") {
    throw new Error(`receipt picture ${src}: ${res.status()} ${res.headers()["content-type"]}`);
  }
  const body = await res.body();
  if (body.length < 100 || body.subarray(1, 4).toString() !== "PNG") throw new Error(`receipt picture ${src} is not a PNG`);
  const width = await img.evaluate((i) => i.naturalWidth);
  if (width < 42 * 8) throw new Error(`receipt picture is ${width} px wide, want the printer's 42 columns`);
  console.log("ok the last receipt shows as a PNG preview");
  await shot(page, "receipt");

  await act("recover");
  await page.locator("[data-testid=offline-banner]").waitFor({ state: "hidden", timeout });
  await waitText(page, "sync", "Online");
  console.log("ok recovery clears the offline banner");

  await act("peerleave");
  await waitText(page, "peers", "till-b: unreachable (left)");
  console.log("ok a till that left the store network shows unreachable");

  await act("paperout");
  await waitText(page, "devices", "Printer: paper out");
  console.log("ok device health shows");
  await shot(page, "final");

  if (errors.length) throw new Error("page errors: " + errors.join("; "));
});
