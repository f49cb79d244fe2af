// Drives a cashier screen of `tillpoint demo` through a real cloud outage
// (the store's link to the cloud cut and restored) in headless Debian
// chromium. Run by cmd/tillpoint's TestCashierScreenThroughRealOutage:
// node outage.mjs SCREEN_URL CONTROL_URL
import { act as actOn, run, waitText as waitFor } from "./drive.mjs";

const [url, control] = process.argv.slice(2);
const timeout = 15000;
const act = (what) => actOn(control, what);
const waitText = (page, id, want) => waitFor(page, id, want, timeout);

await run(async (page) => {
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
});
