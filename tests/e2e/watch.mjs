// The list's search and paging, the watch page (/r/ID) and a share link's
// viewer (/s/ID), as a person uses them, at a desktop and a phone size.
//   node watch.mjs BASE KEY ID    (ID: a completed recording titled "Weekly standup ...")
// Prints JSON of what each page showed.
import { drive, sessionFor, layoutProblems } from "./harness.mjs";

const [base, key, id] = process.argv.slice(2);
const rows = (page) => page.$$eval("#rec-list li", (l) => l.length);

await drive([], async (page, result) => {
  page.on("dialog", (d) => d.accept());
  await sessionFor(page, base, key);
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.goto(base + "/");
  await page.waitForSelector("#live.on");

  // The list: a page of 50, then older ones; a search finds by title.
  result.firstPage = await rows(page);
  result.moreShown = await page.isVisible("#more");
  await page.click("#more");
  await page.waitForFunction(() => document.querySelectorAll("#rec-list li").length > 50);
  result.afterMore = await rows(page);
  result.moreAfter = await page.isVisible("#more");
  await page.fill("#search", "standup");
  await page.waitForFunction(() => document.querySelectorAll("#rec-list li").length === 1);
  result.found = await page.textContent("#rec-list li a.title");
  await page.fill("#search", "no such thing");
  await page.waitForSelector("#empty:not([hidden])");
  result.nothing = await page.textContent("#empty");
  await page.fill("#search", "lead:7 27");
  await page.waitForFunction(() => document.querySelectorAll("#rec-list li").length === 1);
  result.byMetadata = await page.$$eval("#rec-list li a.title", (l) => l.map((a) => a.textContent));
  await page.fill("#search", "standup");
  await page.waitForFunction(() => document.querySelectorAll("#rec-list li").length === 1);

  // Its title opens the watch page.
  await page.click(`#rec-list li[data-id="${id}"] a.title`);
  await page.waitForURL(`**/r/${id}`);
  await page.waitForSelector("#watch:not([hidden])");
  await page.waitForFunction(() => document.getElementById("watch-video").readyState >= 1, null, { timeout: 20000 });
  result.watch = await page.evaluate(() => ({
    title: document.getElementById("watch-title").textContent,
    duration: document.getElementById("watch-video").duration,
    download: document.getElementById("watch-download").getAttribute("href"),
  }));
  result.watchProblems = await layoutProblems(page, "watch 1280");

  // Rename.
  await page.click("#watch-rename");
  await page.fill("#rename-input", "Standup, renamed");
  await page.click("#rename-save");
  await page.waitForFunction(() => document.getElementById("watch-title").textContent === "Standup, renamed");
  result.renamed = await page.evaluate(async (id) => (await (await fetch("/v1/recordings/" + id)).json()).title, id);

  // Share: a link to a page that shows this recording to anyone holding it.
  await page.click("#watch-share");
  await page.waitForSelector("#share-box:not([hidden])");
  result.shareUrl = await page.inputValue("#share-url");
  await page.setViewportSize({ width: 390, height: 844 });
  result.watchPhoneProblems = await layoutProblems(page, "watch 390");

  const stranger = await page.context().browser().newContext();
  const viewer = await stranger.newPage();
  await viewer.setViewportSize({ width: 390, height: 844 });
  await viewer.goto(result.shareUrl);
  await viewer.waitForSelector("#shared:not([hidden])");
  await viewer.waitForFunction(() => document.getElementById("shared-video").readyState >= 1, null, { timeout: 20000 });
  result.viewer = await viewer.evaluate(() => ({
    title: document.getElementById("shared-title").textContent,
    duration: document.getElementById("shared-video").duration,
    links: [...document.querySelectorAll("a")].map((a) => a.getAttribute("href")),
  }));
  result.viewerProblems = await layoutProblems(viewer, "viewer 390");
  result.viewerDownload = await viewer.evaluate(async () =>
    (await fetch(document.getElementById("shared-download").href)).headers.get("content-disposition"));
  // The viewer sees nothing else: the API answers it as a stranger.
  result.viewerList = await viewer.evaluate(async () => (await fetch("/v1/recordings")).status);
  const tampered = result.shareUrl.replace(/sig=([0-9a-f])/, (m, c) => "sig=" + (c === "0" ? "1" : "0"));
  await viewer.goto(tampered);
  await viewer.waitForSelector("#shared-error .why");
  result.tampered = await viewer.textContent("#shared-error .why");
  await stranger.close();

  // Delete, from the watch page: back to the list, without it.
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.click("#watch-delete");
  await page.waitForURL(base + "/");
  await page.waitForSelector("#live.on");
  result.afterDelete = await page.evaluate((id) => !!document.querySelector(`#rec-list li[data-id="${id}"]`), id);
});
