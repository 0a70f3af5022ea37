// Every page, as a person sees it, at a desktop (1280x800) and a phone
// (390x844) size: axe-core's accessibility rules (WCAG 2 A and AA), the
// layout check of harness.mjs (nothing scrolls sideways, every control on
// the screen and reachable), and a screenshot of each into SHOTS.
//   node a11y.mjs BASE KEY RECORDING_ID ROOM SHARE_PAGE_URL
// Prints {"pages": {"NAME@WxH": {"violations": [...], "problems": [...]}}};
// only serious and critical violations are listed.
import { createRequire } from "node:module";
import { drive, keySignIn, layoutProblems } from "./harness.mjs";

const [base, key, recId, room, sharePage] = process.argv.slice(2);
const axePath = createRequire(import.meta.url).resolve("axe-core/axe.min.js");
const shots = process.env.SHOTS || "/tmp";
const SIZES = [[1280, 800], [390, 844]];

async function audit(page, name, size, result) {
  await page.addScriptTag({ path: axePath });
  const found = await page.evaluate(async () => {
    const r = await axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } });
    return r.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) }));
  });
  const problems = await layoutProblems(page, name);
  result.pages[`${name}@${size}`] = { violations: found, problems };
  await page.screenshot({ path: `${shots}/${name}-${size}.jpg`, type: "jpeg", quality: 80 });
}

await drive(
  ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--autoplay-policy=no-user-gesture-required"],
  async (page, result) => {
    result.pages = {};
    for (const [w, h] of SIZES) {
      const size = `${w}x${h}`;
      await page.setViewportSize({ width: w, height: h });
      await page.context().clearCookies();
      await page.goto(base + "/");
      await page.waitForSelector("#signin-view:not([hidden])");
      await audit(page, "signin", size, result);
      await keySignIn(page, key);
      await page.waitForSelector("#live.on");
      await page.waitForSelector(`#rec-list li[data-id="${recId}"]`);
      await audit(page, "recordings", size, result);
      for (const [tab, name] of [["tab-record", "record"], ["tab-camera", "camera"], ["tab-web", "web"], ["tab-calls", "calls"]]) {
        await page.click("#" + tab);
        await page.waitForTimeout(500);
        await audit(page, name, size, result);
      }
      await page.click("#tab-recordings");
      await page.goto(`${base}/r/${recId}`);
      await page.waitForSelector("#watch:not([hidden])");
      await page.waitForFunction(() => document.getElementById("watch-video").readyState >= 1);
      await audit(page, "watch", size, result);
      await page.goto(`${base}/call/${room}`);
      await page.waitForFunction(() => document.getElementById("name").value !== "");
      await audit(page, "call-lobby", size, result);
      await page.click("#join");
      await page.waitForSelector("#in-call:not([hidden])");
      await page.waitForTimeout(1000);
      await page.click("#invite");
      await audit(page, "call", size, result);
      await page.click("#leave");
      const stranger = await page.context().browser().newContext();
      const viewer = await stranger.newPage();
      await viewer.setViewportSize({ width: w, height: h });
      await viewer.goto(sharePage);
      await viewer.waitForSelector("#shared:not([hidden])");
      await viewer.waitForFunction(() => document.getElementById("shared-video").readyState >= 1);
      await audit(viewer, "shared", size, result);
      await stranger.close();
    }
  },
);
