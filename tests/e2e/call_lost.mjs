// A call whose node dies: two Chromium participants (pages loaded from a
// node that does not hold the room) join; once both see each other the
// script says "joined" on a line of its own, then waits for the call to end
// for both (the test kills the room's node), reads why, joins again and
// waits until each sees the other again, on the node that took the room.
//   node call_lost.mjs BASE ROOM HOST_KEY GUEST_TOKEN
// Prints JSON: why each page's call ended, and that both rejoined.
import { CALL_ARGS, drive, sessionFor } from "./harness.mjs";

// The guest comes through `guestBase` (the load balancer): its call socket
// may reach the room's node straight or through another node.
const [base, room, hostKey, guestToken, guestBase = base] = process.argv.slice(2);

const remotePlays = () => {
  const t = [...document.querySelectorAll("#tiles .tile")];
  const v = t.find((x) => !x.querySelector(".name").textContent.endsWith("(you)"));
  return t.length === 2 && v && v.querySelector("video").videoWidth > 0 && v.querySelector("video").currentTime > 1;
};

async function join(page, name) {
  await page.waitForFunction(() => document.getElementById("name").value !== "");
  // A guest's name is the invite's.
  if (await page.isEnabled("#name")) await page.fill("#name", name);
  await page.click("#join");
}

// The node that holds the room, as the API says (read with the host's session).
const roomNode = (page) =>
  page.evaluate(async (id) => (await (await fetch(`/v1/rooms/${id}`)).json()).node, room);

await drive(
  CALL_ARGS,
  async (host, result) => {
    const guestContext = await host.context().browser().newContext();
    const guest = await guestContext.newPage();
    guest.on("pageerror", (e) => (result.guestErrors ||= []).push(e.message));
    await sessionFor(host, base, hostKey);
    await host.goto(`${base}/call/${room}`);
    await join(host, "Ann (host)");
    await host.waitForFunction(() => document.querySelectorAll("#tiles .tile").length === 1, null, { timeout: 30000 });
    await guest.goto(`${guestBase}/call/${room}?token=${encodeURIComponent(guestToken)}`);
    await join(guest, "Bob (guest)");
    await host.waitForFunction(remotePlays, null, { timeout: 30000 });
    await guest.waitForFunction(remotePlays, null, { timeout: 30000 });
    result.node = await roomNode(host);
    console.log("joined");

    const over = () => !document.getElementById("ended").hidden;
    await host.waitForFunction(over, null, { timeout: 90000 });
    await guest.waitForFunction(over, null, { timeout: 90000 });
    result.ended = {
      host: await host.evaluate(() => document.getElementById("ended").dataset.reason),
      guest: await guest.evaluate(() => document.getElementById("ended").dataset.reason),
      title: await host.evaluate(() => document.getElementById("ended-title").textContent),
      rejoin: await host.evaluate(() => !document.getElementById("rejoin").hidden),
    };
    // Joining again once another node took the room over.
    const deadline = Date.now() + 60000;
    const moved = async () => {
      const n = await roomNode(host);
      return typeof n === "string" && n !== result.node;
    };
    while (!(await moved())) {
      if (Date.now() > deadline) throw new Error(`the room stayed on ${result.node}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    result.takenBy = await roomNode(host);
    for (const [p, name] of [[host, "Ann (host)"], [guest, "Bob (guest)"]]) {
      await p.click("#rejoin");
      await p.waitForLoadState();
      await join(p, name);
    }
    try {
      await host.waitForFunction(remotePlays, null, { timeout: 30000 });
      await guest.waitForFunction(remotePlays, null, { timeout: 30000 });
    } catch (e) {
      const seen = () => ({
        tiles: document.querySelectorAll("#tiles .tile").length,
        lobby: document.getElementById("lobby-error")?.textContent,
        status: document.getElementById("status")?.textContent,
        ended: document.getElementById("ended").hidden ? null : document.getElementById("ended").dataset.reason,
      });
      result.after = { host: await host.evaluate(seen), guest: await guest.evaluate(seen) };
      throw e;
    }
    result.rejoined = true;
    await guestContext.close();
  },
);
