// The web page's list shows "Watch live" for a recording with an HLS
// output while it records; its watch page plays what is being recorded.
//   node watch_live.mjs BASE KEY ID SECONDS
// Prints JSON: the barcode counters read off the page's player.
import { drive, sessionFor } from "./harness.mjs";
import { readVideoMark } from "./barcode.mjs";

const [base, key, id, seconds] = process.argv.slice(2);

await drive(["--autoplay-policy=no-user-gesture-required"], async (page, result) => {
  await sessionFor(page, base, key);
  await page.goto(base + "/");
  const link = `#rec-list li[data-id="${id}"] a.watch-live`;
  await page.waitForSelector(link, { timeout: 20000 });
  await page.click(link);
  await page.waitForURL(`**/r/${id}`);
  await page.waitForSelector("#watch-live:not([hidden])", { timeout: 20000 });
  result.badge = await page.textContent("#watch-live");
  result.counters = [];
  const until = Date.now() + Number(seconds) * 1000;
  while (Date.now() < until) {
    await page.waitForTimeout(250);
    const m = await page.evaluate((read) => new Function(`return (${read})`)()("watch-video"), readVideoMark.toString());
    if (m !== null) result.counters.push(m.counter);
  }
});
