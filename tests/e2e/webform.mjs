// Drives the "Web page" form in real headless Chromium: a malformed script is
// refused with the step named, then a scripted recording of PAGE_URL is made
// and appears in the list as completed, playable.
// Usage: node webform.mjs BASE_URL TOKEN PAGE_URL  -> prints a JSON result line.
import { drive, keySignIn } from "./harness.mjs";

const [base, token, pageUrl] = process.argv.slice(2);
await drive([], async (page, result) => {
  await page.goto(base + "/");
  await keySignIn(page, token);
  await page.waitForSelector("#live.on");
  await page.click("#tab-web");
  await page.fill("#web-url", pageUrl);
  await page.check("input[name=web-what][value=script]");
  await page.fill("#web-script", '[{"type": "wait", "duration_ms": 500}, {"type": "click"}]');
  await page.click("#web-submit");
  await page.waitForSelector("#web-error:has-text('step 2 (click)')");
  result.scriptError = await page.textContent("#web-error");
  await page.fill("#web-script", '[{"type": "wait", "duration_ms": 500}, {"type": "click", "selector": "#go"}, {"type": "wait", "duration_ms": 500}]');
  await page.selectOption("#web-preset", "low");
  await page.selectOption("#web-format", "webm");
  await page.click("#web-submit");
  await page.waitForSelector("#recordings-view:not([hidden])");
  const li = await page.waitForSelector("#rec-list li[data-status='completed']", { timeout: 90000 });
  result.id = await li.getAttribute("data-id");
  result.row = await li.textContent();
  await page.click(`li[data-id='${result.id}'] button.play`);
  result.playedDuration = await page.$eval("#player-video", async (v) => {
    if (v.readyState < 1) await new Promise((r) => v.addEventListener("loadedmetadata", r, { once: true }));
    return v.duration;
  });
});
