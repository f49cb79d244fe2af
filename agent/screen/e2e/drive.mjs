// What the browser scripts (screen.mjs, outage.mjs) share: a control
// server to act on, text waits that say what they saw, and one headless
// Debian chromium per run.
import { chromium } from "playwright-core";

// act asks the test's control server to do what (tap, outage, ...).
export async function act(control, what) {
  const r = await fetch(control + "/" + what, { method: "POST" });
  if (!r.ok) throw new Error(`control ${what}: ${r.status} ${await r.text()}`);
}

export async function textOf(page, id) {
  return (await page.locator(`[data-testid=${id}]`).textContent()) ?? "";
}

// waitText waits until the element with data-testid id contains want.
export async function waitText(page, id, want, timeout) {
  try {
    await page.waitForFunction(
      ([id, want]) => (document.querySelector(`[data-testid=${id}]`)?.textContent ?? "").includes(want),
      [id, want], { timeout });
  } catch (e) {
    throw new Error(`${id}: got "${await textOf(page, id)}", want it to contain "${want}"`);
  }
}

// run opens a page in headless chromium, runs steps on it, and exits 0
// when they all passed, or 1 with "FAIL <reason>".
export async function run(steps) {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
  });
  let failed = false;
  try {
    await steps(await browser.newPage());
  } catch (e) {
    failed = true;
    console.error("FAIL " + (e && e.message ? e.message : e));
  } finally {
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
}
