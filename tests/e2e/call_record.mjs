// "Record in this browser" on the call page. Two people in a call, each in
// their own Chromium whose fake camera and microphone play a file (so each
// has a colour and a tone of their own): Ann, the room's host (an API
// key), and Bob, a guest with an invite link. Bob records the call in his
// browser for SECONDS, then stops; the page uploads it to the room.
//   node call_record.mjs BASE ROOM ANN_KEY ANN_Y4M ANN_WAV BOB_JOIN_TOKEN BOB_Y4M BOB_WAV SECONDS
// Prints JSON: Bob's upload state and what the room lists (as Ann sees it).
import { chromium } from "playwright-core";
import { sessionFor } from "./harness.mjs";

const [base, room, annKey, annY4m, annWav, bobToken, bobY4m, bobWav, seconds] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function person(key, guestToken, y4m, wav, errors) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/lib/chromium/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run",
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      `--use-file-for-fake-video-capture=${y4m}`,
      `--use-file-for-fake-audio-capture=${wav}`,
      "--allow-loopback-in-peer-connection",
      "--disable-features=WebRtcHideLocalIpsWithMdns",
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
  const page = await browser.newPage();
  page.on("pageerror", (e) => errors.push(e.message));
  await page.setViewportSize({ width: 1280, height: 800 });
  if (key) await sessionFor(page, base, key);
  await page.goto(`${base}/call/${room}` + (guestToken ? `?token=${encodeURIComponent(guestToken)}` : ""));
  await page.waitForFunction(() => document.getElementById("name").value !== "", null, { timeout: 10000 });
  await page.click("#join");
  await page.waitForSelector("#in-call:not([hidden])", { timeout: 20000 });
  return { browser, page };
}

// Both tiles on `page` show moving pictures.
async function seesBoth(page) {
  await page.waitForFunction(
    () => {
      const v = [...document.querySelectorAll("#tiles video")];
      return v.length === 2 && v.every((x) => x.videoWidth > 0 && x.currentTime > 0.5);
    },
    null,
    { timeout: 30000, polling: 200 },
  );
}

const result = { annErrors: [], bobErrors: [] };
let ann, bob;
try {
  ann = await person(annKey, null, annY4m, annWav, result.annErrors);
  bob = await person(null, bobToken, bobY4m, bobWav, result.bobErrors);
  await seesBoth(ann.page);
  await seesBoth(bob.page);
  result.bobIsHost = await bob.page.evaluate(() => !document.querySelector(".host-only").hidden);
  result.buttonShown = await bob.page.evaluate(() => !document.getElementById("record-here").hidden);
  // The names drawn into the recorded picture, as the page hands them over.
  await bob.page.evaluate(() => {
    const compose = TapedeckRecorder.compose;
    TapedeckRecorder.compose = (o) => {
      window.composedNames = () => o.sources().map((x) => x.name);
      return compose(o);
    };
  });
  await bob.page.click("#record-here");
  await bob.page.waitForSelector("#here:not([hidden])");
  result.composedNames = await bob.page.evaluate(() => window.composedNames().sort());
  await sleep(Number(seconds) * 1000);
  result.timer = await bob.page.textContent("#here-time");
  // Bob's recording is his own: the room's REC state and the host's
  // buttons do not change for it (they are the room recording's).
  const roomControls = (page) => page.evaluate(() => ({
    roomRec: !document.getElementById("rec").hidden,
    record: !document.getElementById("record").hidden,
    pause: !document.getElementById("pause").hidden,
    stop: !document.getElementById("stop").hidden,
    here: !document.getElementById("here").hidden,
  }));
  result.annControls = await roomControls(ann.page);
  result.bobControls = await roomControls(bob.page);
  await bob.page.click("#record-here");
  await bob.page.waitForFunction(
    () => ["completed", "failed"].includes(document.getElementById("here").dataset.upload),
    null,
    { timeout: 60000 },
  );
  result.upload = await bob.page.evaluate(() => document.getElementById("here").dataset.upload);
  // Stopped: no blinking REC any more, only what became of the upload.
  result.afterStop = await bob.page.evaluate(() => ({
    dot: getComputedStyle(document.querySelector("#here .dot")).display,
    label: document.getElementById("here-label").textContent,
    recClass: document.getElementById("here").classList.contains("rec"),
  }));
  result.recordedS = await bob.page.evaluate(() => Number(document.getElementById("here").dataset.seconds));
  result.roomRecordings = await ann.page.evaluate(async ({ room, key }) => {
    const r = await fetch(`/v1/rooms/${room}/recordings`, { headers: { Authorization: "Bearer " + key } });
    return (await r.json()).recordings.map((x) => ({ id: x.id, kind: x.source.kind, owner: x.owner, title: x.title,
      guest: x.source.guest }));
  }, { room, key: annKey });
  console.log(JSON.stringify(result));
} catch (e) {
  console.error("e2e failed:", e.message, JSON.stringify(result));
  process.exitCode = 1;
} finally {
  if (ann) await ann.browser.close();
  if (bob) await bob.browser.close();
}
