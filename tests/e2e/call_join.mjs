// Why a join fails, and why a call ended, as the call page says it. The
// host, Cat and Fay join a room of three places; Dan then tries it full,
// with an expired invite, a tampered invite, and (signed in) an unknown
// room; the host ends the call for everyone (Cat reads why), and Dan
// tries the closed room.
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
    // The host is in the call too, to end it for everyone.
    const hostPage = await catPage.context().browser().newPage();
    hostPage.on("dialog", (d) => d.accept());
    await sessionFor(hostPage, base, hostKey);
    await hostPage.goto(`${base}/call/${room}`);
    await hostPage.waitForFunction(() => document.getElementById("name").value !== "");
    await hostPage.click("#join");
    await hostPage.waitForSelector("#in-call:not([hidden])", { timeout: 20000 });
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

    // The host ends the call for everyone: Cat's page says the host ended it.
    result.endShown = await hostPage.isVisible("#end-all");
    result.catSeesEnd = await catPage.isVisible("#end-all");
    await hostPage.click("#end-all");
    await catPage.waitForSelector("#ended:not([hidden])", { timeout: 20000 });
    result.catEnded = await catPage.evaluate(() => ({
      title: document.getElementById("ended-title").textContent,
      reason: document.getElementById("ended").dataset.reason,
    }));
    await hostPage.waitForSelector("#ended:not([hidden])", { timeout: 20000 });
    result.hostEnded = await hostPage.evaluate(() => ({
      title: document.getElementById("ended-title").textContent,
      rejoin: !document.getElementById("rejoin").hidden,
    }));
    result.catRejoin = await catPage.evaluate(() => !document.getElementById("rejoin").hidden);
    result.closed = await attempt(danPage, url(room, dan));
  },
);
