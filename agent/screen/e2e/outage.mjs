// Drives a cashier screen of `tillpoint demo` through a real cloud outage
// (the store's link to the cloud cut and restored) in headless Debian
// chromium. Run by cmd/tillpoint's TestCashierScreenThroughRealOutage:
// node outage.mjs SCREEN_URL CONTROL_URL
import { chromium } from "playwright-core";

const [url, control] = process.argv.slice(2);
const timeout = 15000;

async function act(what) {
  const r = await fetch(control + "/" + what, { method: "POST" });
  if (!r.ok) throw new Error(`control ${what}: ${r.status} ${await r.text()}`);
}

async function waitText(page, id, want) {
  try {
    await page.waitForFunction(
      ([id, want]) => (document.querySelector(`[data-testid=${id}]`)?.textContent ?? "").includes(want),
      [id, want], { timeout });
  } catch (e) {
    const got = await page.locator(`[data-testid=${id}]`).textContent();
    throw new Error(`${id}: got "${got}", want it to contain "${want}"`);
  }
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
});
let failed = false;
try {
  const page = await browser.newPage();
  await page.goto(url);
  await waitText(page, "sync", "Online");
  console.log("ok the till shows online");

  await act("tap");
  await waitText(page, "member-card", "nfc:••••3456");
  console.log("ok a card tap on the simulated NFC reader makes the card appear");

  await act("outage");
  await page.locator("[data-testid=offline-banner]").waitFor({ state: "visible", timeout });
  await waitText(page, "sync", "Offline");
  console.log("ok cutting the store's link to the cloud shows the offline banner");

  await act("recover");
  await page.locator("[data-testid=offline-banner]").waitFor({ state: "hidden", timeout });
  await waitText(page, "sync", "Online");
  console.log("ok restoring it clears the banner");
} catch (e) {
  failed = true;
  console.error("FAIL " + (e && e.message ? e.message : e));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
