// Two guests on the call page (Bob and Cat, cameras off) watch Ann, who
// publishes three simulcast layers over WHIP (started by the test). Once
// both get her top layer, Cat's network is throttled: an nftables rule in
// table TABLE (made by the test) drops what comes to her page's port past
// RATE kbytes/s. Her page must drop to a lower layer and keep playing;
// Bob's stays on the top one. The cap is RATE, or half of the top layer's
// rate as Cat receives it if that is less (`rate` in the output).
//   node call_simulcast.mjs BASE ROOM BOB_TOKEN CAT_TOKEN TABLE RATE
// Prints Ann's picture width on each page over time, and Cat's port.
import { execFileSync } from "node:child_process";
import { CALL_ARGS, drive } from "./harness.mjs";

const [base, room, bobToken, catToken, table, rate] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Ann's tile on `page`: its picture's width and how far it played; the
// page's inbound video counters.
async function ann(page) {
  return page.evaluate(async () => {
    const tile = [...document.querySelectorAll("#tiles .tile")].find((t) => t.querySelector(".name").textContent.startsWith("Ann"));
    const v = tile && tile.querySelector("video");
    let decoded = 0, freezes = 0, bytes = 0;
    (await pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") {
        decoded += s.framesDecoded || 0;
        freezes += s.freezeCount || 0;
        bytes += s.bytesReceived || 0;
      }
    });
    return { width: v ? v.videoWidth : 0, time: v ? v.currentTime : 0, decoded, freezes, bytes };
  });
}

// The local port of `page`'s selected ICE pair: where the server sends to.
async function port(page) {
  return page.evaluate(async () => {
    let p = null;
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) {
        const pair = stats.get(s.selectedCandidatePairId);
        p = stats.get(pair.localCandidateId).port;
      }
    });
    return p;
  });
}

async function join(page, token) {
  await page.goto(`${base}/call/${room}?token=${encodeURIComponent(token)}`);
  await page.click("#join");
  await page.waitForFunction(() => typeof pc === "object" && pc && pc.connectionState === "connected", undefined, { timeout: 20000, polling: 100 });
  // Camera off: the machine's two cores encode Ann's three layers.
  await page.click("#cam");
}

await drive(CALL_ARGS, async (bob, result) => {
  const cat = await bob.context().browser().newPage();
  await join(bob, bobToken);
  await join(cat, catToken);
  // Both get Ann's top layer first.
  const top = () => {
    const tile = [...document.querySelectorAll("#tiles .tile")].find((t) => t.querySelector(".name").textContent.startsWith("Ann"));
    return tile && tile.querySelector("video").videoWidth === 1280;
  };
  for (const [name, page] of [["Bob", bob], ["Cat", cat]]) {
    try {
      await page.waitForFunction(top, undefined, { timeout: 45000, polling: 200 });
    } catch (e) {
      // What the page has: its tiles, and each picture it receives.
      const seen = await page.evaluate(async () => {
        const tiles = [...document.querySelectorAll("#tiles .tile")].map((t) => t.querySelector(".name").textContent);
        const videos = [];
        (await pc.getStats()).forEach((s) => {
          if (s.type === "inbound-rtp" && s.kind === "video") {
            videos.push({ mid: s.mid, width: s.frameWidth, decoded: s.framesDecoded, bytes: s.bytesReceived });
          }
        });
        return { tiles, videos };
      });
      throw new Error(`${name} never got the top layer: ${JSON.stringify(await ann(page))} ${JSON.stringify(seen)}`);
    }
  }
  result.before = { bob: await ann(bob), cat: await ann(cat) };
  // The top layer's rate as Cat gets it: under load Chromium encodes it
  // at far less than its 1.5 Mbps ceiling (limited by CPU), so the cap is
  // RATE or half of that, whichever is less: the top layer never fits.
  await sleep(2000);
  const topRate = ((await ann(cat)).bytes - result.before.cat.bytes) / 2 / 1000;
  result.topKBps = Math.round(topRate);
  result.rate = Math.max(20, Math.min(Number(rate), Math.round(topRate / 2)));
  result.catPort = await port(cat);
  execFileSync("nft", ["add", "rule", "inet", table, "input", "udp", "dport", String(result.catPort),
    "limit", "rate", "over", `${result.rate}`, "kbytes/second", "drop"]);
  result.samples = [];
  for (let i = 0; i < 20; i++) {
    await sleep(1000);
    result.samples.push({ s: i + 1, bob: await ann(bob), cat: await ann(cat) });
  }
});
