// Shared by the page scripts: launches Debian's Chromium, opens a page that
// collects its errors, runs `body(page, result)`, and prints `result` as the
// last line (with `pageErrors`), or fails with what was gathered so far.
import { chromium } from "playwright-core";

export async function drive(extraArgs, body) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/lib/chromium/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", ...extraArgs,
    ],
  });
  const result = {};
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await body(page, result);
    result.pageErrors = errors;
    console.log(JSON.stringify(result));
  } catch (e) {
    console.error("e2e failed:", e.message, JSON.stringify(result));
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}
