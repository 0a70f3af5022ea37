// Why a join fails, and why a call ended, as the call page says it. Cat
// and Fay join a room of two places; Dan then tries it full, with an expired
// invite, a tampered invite, and (signed in) an unknown room; the host closes the room
// (Cat reads why), and Dan tries the closed room.
//   node call_join.mjs BASE ROOM HOST_KEY CAT FAY DAN EXPIRED TAMPERED UNKNOWN_ROOM
// Prints JSON: each attempt's lobby error (sentence and details line), and
// Cat's page after the close.
import { drive, sessionFor } from "./harness.mjs";

const [base, room, hostKey, cat, fay, dan, expired, tampered, unknownRoom] = process.argv.slice(2);
const url = (r, t) => `${base}/call/${r}?token=${encodeURIComponent(t)}`;

// Opens `link`, presses Join and returns what the lobby says.
async function attempt(page, link) {
  await page.goto(link);
  await page.waitForFunction(() => document.getElementById("name").value !== "");
  await page.click("#join");
  await page.waitForFunction(() => document.querySelector("#lobby-error .why"), null, { timeout: 20000 });
  return page.evaluate(() => ({
    text: document.querySelector("#lobby-error .why").textContent,
    details: document.querySelector("#lobby-error .details")?.textContent ?? null,
  }));
}

await drive(
  [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
  ],
  async (catPage, result) => {
    await catPage.goto(url(room, cat));
    await catPage.click("#join");
    await catPage.waitForSelector("#in-call:not([hidden])", { timeout: 20000 });

    const fayPage = await catPage.context().browser().newPage();
    await fayPage.goto(url(room, fay));
    await fayPage.click("#join");
    await fayPage.waitForSelector("#in-call:not([hidden])", { timeout: 20000 });
    const danPage = await catPage.context().browser().newPage();
    danPage.on("pageerror", (e) => (result.danErrors ||= []).push(e.message));
    result.full = await attempt(danPage, url(room, dan));
    result.expired = await attempt(danPage, url(room, expired));
    result.tampered = await attempt(danPage, url(room, tampered));
    // A signed-in user following a link to a room that does not exist.
    await sessionFor(danPage, base, hostKey);
    result.unknown = await attempt(danPage, `${base}/call/${unknownRoom}`);
    await danPage.context().clearCookies();

    // The host closes the room: Cat's page says the host ended it.
    const r = await fetch(`${base}/v1/rooms/${room}`, { method: "DELETE", headers: { Authorization: "Bearer " + hostKey } });
    result.closeStatus = r.status;
    await catPage.waitForSelector("#ended:not([hidden])", { timeout: 20000 });
    result.catEnded = await catPage.evaluate(() => ({
      title: document.getElementById("ended-title").textContent,
      reason: document.getElementById("ended").dataset.reason,
    }));
    result.closed = await attempt(danPage, url(room, dan));
  },
);
