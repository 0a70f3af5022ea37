// A web recording's progress as it renders, on the list and on its watch
// page at once: every distinct progress text seen until it completes.
//   node progress.mjs BASE KEY ID   -> {"list": [...], "watch": [...]}
import { drive, sessionFor } from "./harness.mjs";

const [base, key, id] = process.argv.slice(2);

// Texts `read` gives on `page` until `ended` is true there.
async function watchTexts(page, read, ended) {
  const seen = [];
  const deadline = Date.now() + 120000;
  while (Date.now() < deadline) {
    const t = await page.evaluate(read, id);
    if (t && seen[seen.length - 1] !== t) seen.push(t);
    if (await page.evaluate(ended, id)) return seen;
    await page.waitForTimeout(250);
  }
  throw new Error("never completed; saw " + JSON.stringify(seen));
}

await drive([], async (page, result) => {
  await sessionFor(page, base, key);
  await page.goto(base + "/");
  await page.waitForSelector("#live.on");
  const watch = await page.context().browser().newPage();
  await sessionFor(watch, base, key);
  await watch.goto(`${base}/r/${id}`);
  await watch.waitForSelector("#watch:not([hidden])");
  [result.list, result.watch] = await Promise.all([
    watchTexts(page,
      (id) => document.querySelector(`#rec-list li[data-id="${id}"] .progress span`)?.textContent ?? null,
      (id) => document.querySelector(`#rec-list li[data-id="${id}"]`)?.dataset.status === "completed"),
    watchTexts(watch,
      () => (document.getElementById("watch-progress").hidden ? null : document.getElementById("progress-text").textContent),
      () => document.getElementById("watch").dataset.status === "completed"),
  ]);
});
