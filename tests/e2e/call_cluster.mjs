// A call across a cluster's nodes: the host's page is loaded from one node,
// the guest's from another (the room is held by a third), in Debian's
// Chromium with fake cameras and microphones. Each must see the other;
// both stay SECONDS more. (Also a call on one server: both bases the same.)
//   node call_cluster.mjs HOST_BASE GUEST_BASE ROOM HOST_KEY GUEST_TOKEN SECONDS
// Prints JSON: what each page received, and the network path it took.
import { CALL_ARGS, drive, sessionFor } from "./harness.mjs";

const [hostBase, guestBase, room, hostKey, guestToken, seconds] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const remotePlays = () => {
  const t = [...document.querySelectorAll("#tiles .tile")];
  const v = t.find((x) => !x.querySelector(".name").textContent.endsWith("(you)"));
  return t.length === 2 && v && v.querySelector("video").videoWidth > 0 && v.querySelector("video").currentTime > 1;
};

// What the page received (per kind; sound's energy: it was heard), and the
// path its media took (the selected candidate pair's local end).
async function inbound(page) {
  return page.evaluate(async () => {
    const out = {};
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === "inbound-rtp") out[s.kind] = { packets: s.packetsReceived, framesDecoded: s.framesDecoded, energy: s.totalAudioEnergy };
      if (s.type === "transport" && s.selectedCandidatePairId) {
        const local = stats.get(stats.get(s.selectedCandidatePairId)?.localCandidateId);
        if (local) out.path = { protocol: local.protocol, type: local.candidateType, relayProtocol: local.relayProtocol || null };
      }
    });
    return out;
  });
}

await drive(
  CALL_ARGS,
  async (host, result) => {
    const guestContext = await host.context().browser().newContext();
    const guest = await guestContext.newPage();
    guest.on("pageerror", (e) => (result.guestErrors ||= []).push(e.message));
    await sessionFor(host, hostBase, hostKey);
    await host.goto(`${hostBase}/call/${room}`);
    await host.waitForFunction(() => document.getElementById("name").value !== "");
    await host.fill("#name", "Ann (host)");
    await host.click("#join");
    await host.waitForFunction(() => document.querySelectorAll("#tiles .tile").length === 1, null, { timeout: 30000 });
    await guest.goto(`${guestBase}/call/${room}?token=${encodeURIComponent(guestToken)}`);
    await guest.waitForFunction(() => document.getElementById("name").value !== "");
    await guest.click("#join");
    await host.waitForFunction(remotePlays, null, { timeout: 30000 });
    await guest.waitForFunction(remotePlays, null, { timeout: 30000 });

    await sleep(Number(seconds) * 1000);
    result.host = await inbound(host);
    result.guest = await inbound(guest);
    await guestContext.close();
  },
);
