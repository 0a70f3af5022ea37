// Drives the web page in real headless Chromium with its fake camera:
// sign in, record ~3 s from the camera page, see the recording complete live,
// play it, check the thumbnail and download, delete it.
// Usage: node camera.mjs BASE_URL TOKEN  -> prints a JSON result line.
import { drive, keySignIn } from "./harness.mjs";

const [base, token] = process.argv.slice(2);
await drive(["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"], async (page, result) => {
  page.on("dialog", (d) => d.accept());
  await page.goto(base + "/");
  // A wrong token is refused with a message.
  await keySignIn(page, "tdk_wrong");
  await page.waitForSelector("#signin-error .details:has-text('unauthorized')");
  result.refused = await page.textContent("#signin-error .why");
  await keySignIn(page, token);
  await page.waitForSelector("#recordings-view:not([hidden])");
  await page.waitForSelector("#live.on");
  // The camera is on while its tab shows, and off once you leave it.
  const cameraOff = () => page.evaluate(() => window.camTracks.every((t) => t.readyState === "ended"));
  const keepTracks = () => page.evaluate(() => { window.camTracks = document.getElementById("camera-preview").srcObject.getTracks(); });
  await page.click("#tab-camera");
  await page.waitForSelector("#camera-status:has-text('camera ready')", { timeout: 20000 });
  await keepTracks();
  result.cameraOnInTab = !(await cameraOff());
  await page.click("#tab-web");
  result.cameraOffAfterTab = await cameraOff();
  await page.click("#tab-camera");
  await page.waitForSelector("#camera-status:has-text('camera ready')", { timeout: 20000 });
  await keepTracks();
  await page.click("#record");
  try { await page.waitForSelector("#rec-indicator:not([hidden])"); } catch (e) { result.statusText = await page.textContent("#camera-status"); result.t = Date.now(); throw e; }
  await page.waitForFunction(() => document.querySelector("#rec-timer").textContent === "00:03", null, { timeout: 20000 });
  result.timer = await page.textContent("#rec-timer");
  result.sent = await page.textContent("#camera-status");
  await page.click("#record");
  await page.waitForSelector("#recordings-view:not([hidden])");
  result.cameraOffAfterStop = await cameraOff();
  // The list updates live from /v1/events: processing, then completed.
  const li = await page.waitForSelector("#rec-list li[data-status='completed']", { timeout: 60000 });
  result.id = await li.getAttribute("data-id");
  result.thumbWidth = await page.$eval(`li[data-id='${result.id}'] img.thumb`, async (img) => {
    if (!img.complete) await new Promise((r) => (img.onload = r));
    return img.naturalWidth;
  });
  await page.click(`li[data-id='${result.id}'] button.play`);
  result.playedDuration = await page.$eval("#player-video", async (v) => {
    if (v.readyState < 1) await new Promise((r) => v.addEventListener("loadedmetadata", r, { once: true }));
    return v.duration;
  });
  await page.click("#player-close");
  const href = await page.$eval(`li[data-id='${result.id}'] a.download`, (a) => a.href);
  result.downloadStatus = await page.evaluate(async (u) => (await fetch(u)).status, href);
  await page.click(`li[data-id='${result.id}'] button.delete`);
  await page.waitForSelector(`li[data-id='${result.id}']`, { state: "detached", timeout: 10000 });
  result.deleted = true;
});
