// Sharing a screen in a call: the host (signed in) and a guest join on the
// call page in Debian's Chromium (fake camera, microphone and screen); the
// host presses "Share screen", the guest sees the screen as a tile of its
// own, the host shares for SECONDS and presses "Stop sharing", and the
// guest's screen tile goes.
//   node call_screen.mjs BASE ROOM HOST_KEY GUEST_TOKEN SECONDS
// Prints JSON: what the guest saw of the screen, and the host's button.
import { CALL_ARGS, drive, sessionFor } from "./harness.mjs";

const [base, room, hostKey, guestToken, seconds] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const remotePlays = () => {
  const t = [...document.querySelectorAll("#tiles .tile:not(.screen)")];
  const v = t.find((x) => !x.querySelector(".name").textContent.endsWith("(you)"));
  return t.length === 2 && v && v.querySelector("video").videoWidth > 0;
};

await drive(CALL_ARGS, async (host, result) => {
  const guestContext = await host.context().browser().newContext();
  const guest = await guestContext.newPage();
  guest.on("pageerror", (e) => (result.guestErrors ||= []).push(e.message));
  await sessionFor(host, base, hostKey);
  await host.goto(`${base}/call/${room}`);
  await host.waitForFunction(() => document.getElementById("name").value !== "");
  await host.fill("#name", "Ann");
  await host.click("#join");
  await guest.goto(`${base}/call/${room}?token=${encodeURIComponent(guestToken)}`);
  await guest.waitForFunction(() => document.getElementById("name").value !== "");
  await guest.click("#join");
  await host.waitForFunction(remotePlays, null, { timeout: 30000 });
  await guest.waitForFunction(remotePlays, null, { timeout: 30000 });
  result.screenTilesBefore = await guest.evaluate(() => document.querySelectorAll("#tiles .tile.screen").length);

  await host.click("#share");
  await host.waitForFunction(() => document.getElementById("share").textContent === "Stop sharing", null, { timeout: 15000 });
  result.hostButton = await host.evaluate(() => ({ text: document.getElementById("share").textContent, pressed: document.getElementById("share").getAttribute("aria-pressed") }));
  await guest.waitForFunction(() => {
    const v = document.querySelector("#tiles .tile.screen video");
    return v && v.videoWidth > 0 && v.currentTime > 1;
  }, null, { timeout: 30000 });
  result.guestSaw = await guest.evaluate(() => {
    const t = document.querySelector("#tiles .tile.screen");
    const v = t.querySelector("video");
    return { name: t.querySelector(".name").textContent, width: v.videoWidth, height: v.videoHeight, tracks: v.srcObject.getTracks().map((x) => x.kind).sort() };
  });
  await sleep(Number(seconds) * 1000);
  await host.click("#share");
  await guest.waitForFunction(() => !document.querySelector("#tiles .tile.screen"), null, { timeout: 15000 });
  result.screenGone = true;
  result.hostButtonAfter = await host.evaluate(() => document.getElementById("share").textContent);
  await sleep(1000);
  await guestContext.close();
});
