// Every tab of the web page at a desktop (1280x800) and a phone (390x844)
// size: nothing scrolls sideways (the document's scrollWidth, not
// innerWidth, which grows on a phone to fit what overflows), every
// visible control of the tab lies inside the screen's width and is the
// element a tap at its centre reaches; signed out, no tab bar; Play opens
// the player inside the screen.
//   node layout.mjs BASE TOKEN   -> JSON: {sizes: {"WxH": {problems: [...], ...}}}
import { drive, keySignIn, layoutProblems as check } from "./harness.mjs";

const [base, token] = process.argv.slice(2);
const SIZES = [[1280, 800], [390, 844]];
const TABS = ["tab-recordings", "tab-record", "tab-camera", "tab-web", "tab-calls"];

await drive(["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"], async (page, result) => {
  result.sizes = {};
  for (const [w, h] of SIZES) {
    const r = { problems: [] };
    result.sizes[`${w}x${h}`] = r;
    await page.setViewportSize({ width: w, height: h });
    // Signed out: no session cookie.
    await page.context().clearCookies();
    await page.goto(base + "/");
    await page.waitForSelector("#signin-view:not([hidden])");
    r.navShownSignedOut = await page.evaluate(() => getComputedStyle(document.getElementById("nav")).display !== "none");
    r.problems.push(...(await check(page, "sign-in")));
    await keySignIn(page, token);
    await page.waitForSelector("#live.on");
    await page.waitForSelector("#rec-list li[data-status='completed']");
    for (const tab of TABS) {
      await page.click("#" + tab);
      await page.waitForTimeout(300);
      r.problems.push(...(await check(page, tab)));
    }
    await page.click("#tab-recordings");
    await page.click("#rec-list li[data-status='completed'] button.play");
    await page.waitForFunction(() => document.getElementById("player-video").readyState >= 1, null, { timeout: 20000 });
    r.player = await page.evaluate(() => {
      const b = document.getElementById("player").getBoundingClientRect();
      return { open: document.getElementById("player").open, top: b.top, bottom: b.bottom, left: b.left, right: b.right,
        width: innerWidth, height: innerHeight };
    });
    await page.click("#player-close");
    r.playerClosed = await page.evaluate(() => !document.getElementById("player").open);
    r.downloadName = await page.evaluate(async () => {
      const a = document.querySelector("#rec-list li[data-status='completed'] a.download");
      const resp = await fetch(a.href);
      return resp.headers.get("content-disposition");
    });
    await page.screenshot({ path: `${process.env.SHOTS || "/tmp"}/recordings-${w}x${h}.png` });
    if (w !== SIZES[0][0]) continue;
    // Words, not codes: the kind of each recording in plain English.
    r.completedRow = await page.textContent("#rec-list li[data-status='completed'] .sub");
    // A browser that stopped sending mid-upload: its recording can be
    // stopped from the list, keeping what arrived; it then says what
    // became of it in words, its code in a details line.
    const stuck = "#rec-list li[data-status='recording']";
    r.stopShown = await page.isVisible(`${stuck} button.stop-rec`);
    const stuckId = await page.getAttribute(stuck, "data-id");
    await page.click(`${stuck} button.stop-rec`);
    const after = `#rec-list li[data-id='${stuckId}']`;
    await page.waitForSelector(`${after}[data-status='failed'], ${after}[data-status='completed']`, { timeout: 30000 });
    r.stopped = await page.evaluate((sel) => {
      const li = document.querySelector(sel);
      return { status: li.dataset.status, why: li.querySelector(".error .why")?.textContent ?? null,
        details: li.querySelector(".error .details")?.textContent ?? null };
    }, after);
  }
});
