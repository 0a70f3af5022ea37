// The home page's Record tab in Debian's Chromium (fake camera and
// microphone), signed in with an API key. Scenarios:
//   drop SECONDS OFFLINE_AT OFFLINE_S: records the camera for SECONDS; the
//     browser's network emulation cuts the server off at OFFLINE_AT for
//     OFFLINE_S; the page must keep recording and catch up.
//   fallback SECONDS: goes offline after 1 s and stays offline; after stop
//     the upload gives up (tapedeck.giveUpMs = 3000) and the page offers the
//     file, which is saved to OUT. Then back online, the page is reloaded
//     and the recording it kept is uploaded from its list.
//   both SECONDS: the screen (this tab) with the camera in a bubble, which
//     is dragged to the top left corner halfway.
//   pause SECONDS: the camera; paused for 2 s after 2 s of recording.
// Every scenario: the microphone's meter before recording, the countdown
// seen, whether the camera was previewed before Record.
//   node record_tab.mjs BASE TOKEN SCENARIO SECONDS [OFFLINE_AT OFFLINE_S | OUT]
// Prints JSON: the recording's id, the page's status texts seen, the
// seconds the REC timer reached.
import { drive, keySignIn } from "./harness.mjs";

const [base, token, scenario, seconds, ...rest] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

await drive(
  [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--auto-accept-this-tab-capture",
    "--auto-select-tab-capture-source-by-title=tapedeck",
  ],
  async (page, result) => {
    const context = page.context();
    await page.setViewportSize({ width: 1280, height: 720 });
    await page.goto(base + "/");
    if (scenario === "fallback") await page.evaluate(() => localStorage.setItem("tapedeck.giveUpMs", "3000"));
    await keySignIn(page, token);
    await page.waitForSelector("#nav:not([hidden])");
    await page.click("#tab-record");
    await page.selectOption("#br-what", scenario === "both" ? "both" : "camera");
    // Before recording: the camera's preview and the microphone's level.
    result.micMax = 0;
    for (let i = 0; i < 30 && result.micMax === 0; i++) {
      await sleep(100);
      result.micMax = Math.max(result.micMax, await page.evaluate(() => document.getElementById("br-mic-level").value));
    }
    result.previewBefore = await page.evaluate(() => {
      const v = document.getElementById("br-preview");
      return !!v.srcObject && v.srcObject.getVideoTracks().length > 0;
    });
    await page.evaluate(() => {
      window.countdownSeen = [];
      new MutationObserver(() => {
        const el = document.getElementById("br-countdown");
        if (!el.hidden && el.textContent) window.countdownSeen.push(el.textContent);
      }).observe(document.getElementById("br-countdown"), { childList: true, attributes: true, characterData: true, subtree: true });
    });
    const seen = new Set();
    const watch = setInterval(async () => {
      const t = await page.textContent("#br-status").catch(() => null);
      if (t) seen.add(t.replace(/[\d.]+ of [\d.]+ MB/g, "N of N MB"));
    }, 200);
    await page.click("#br-record");
    await page.waitForSelector("#br-indicator:not([hidden])", { timeout: 10000 });
    const started = Date.now();
    result.countdown = await page.evaluate(() => [...new Set(window.countdownSeen)]);
    const at = (s) => sleep(Math.max(0, started + s * 1000 - Date.now()));
    if (scenario === "drop") {
      const [offlineAt, offlineS] = rest.map(Number);
      await at(offlineAt);
      await context.setOffline(true);
      result.offlineFrom = (Date.now() - started) / 1000;
      await at(offlineAt + offlineS);
      await context.setOffline(false);
      result.offlineTo = (Date.now() - started) / 1000;
    } else if (scenario === "fallback") {
      await at(1);
      await context.setOffline(true);
    } else if (scenario === "both") {
      // Halfway, the camera bubble is dragged to the top left corner.
      await at(Number(seconds) / 2);
      const b = await page.locator("#br-bubble").boundingBox();
      const v = await page.locator("#br-preview").boundingBox();
      await page.mouse.move(b.x + b.width / 2, b.y + b.height / 2);
      await page.mouse.down();
      await page.mouse.move(v.x + 5, v.y + 5, { steps: 8 });
      await page.mouse.up();
      result.bubble = await page.evaluate(() => ({ ...document.getElementById("br-bubble").dataset }));
      result.bubbleMovedAt = (Date.now() - started) / 1000;
    } else if (scenario === "pause") {
      await at(2);
      await page.click("#br-pause");
      result.pausedShown = await page.evaluate(() => document.getElementById("br-indicator").classList.contains("paused"));
      result.pauseLabel = await page.textContent("#br-pause");
      await at(4);
      result.timerWhilePaused = await page.textContent("#br-timer");
      await page.click("#br-pause");
    }
    await at(Number(seconds));
    result.timer = await page.textContent("#br-timer");
    await page.click("#br-record");
    result.stoppedAt = (Date.now() - started) / 1000;
    if (scenario === "fallback") {
      const link = await page.waitForSelector("#br-download:not([hidden])", { timeout: 30000 });
      result.upload = await page.evaluate(() => document.getElementById("br-status").dataset.upload);
      result.recordedS ??= await page.evaluate(() => Number(document.getElementById("br-status").dataset.seconds));
      const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
      result.downloadName = download.suggestedFilename();
      await download.saveAs(rest[0]);
      // Back online, a reloaded page offers what it kept; "Upload" sends
      // the rest of it.
      await context.setOffline(false);
      await page.reload();
      await page.waitForSelector("#nav:not([hidden])");
      await page.click("#tab-record");
      await page.waitForSelector("#br-leftovers:not([hidden])", { timeout: 10000 });
      result.leftovers = await page.$$eval("#br-leftover-list li", (l) => l.length);
      await page.click("#br-leftover-list li button.upload");
      await page.waitForFunction(() => document.querySelectorAll("#br-leftover-list li").length === 0, null, {
        timeout: 60000,
      });
      result.leftoversAfter = await page.evaluate(async () => (await TapedeckRecorder.leftovers()).length);
    } else {
      await page.waitForFunction(
        () => ["completed", "failed"].includes(document.getElementById("br-status").dataset.upload),
        null,
        { timeout: 60000 },
      );
    }
    clearInterval(watch);
    // How long the page recorded, as it timed it (start to stop).
    if (result.recordedS === undefined) {
      await page.waitForFunction(() => document.getElementById("br-status").dataset.seconds !== undefined, null, {
        timeout: 60000,
      });
    }
    result.recordedS ??= await page.evaluate(() => Number(document.getElementById("br-status").dataset.seconds));
    result.upload ??= await page.evaluate(() => document.getElementById("br-status").dataset.upload);
    result.status = await page.textContent("#br-status");
    result.seen = [...seen];
    result.recordings = await page.evaluate(async (token) => {
      const r = await fetch("/v1/recordings?limit=10", { headers: { Authorization: "Bearer " + token } });
      return (await r.json()).recordings.map((x) => ({ id: x.id, kind: x.source.kind, title: x.title }));
    }, token);
  },
);
