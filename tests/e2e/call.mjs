// Two people in a call on the call page (/call/ROOM), in Debian's Chromium
// with fake cameras and microphones: the host (signed in with an API key)
// and a guest (an invite link). Each must see and hear the other; the host
// records, pauses, resumes and stops, and the guest sees the REC timer.
//   node call.mjs BASE ROOM HOST_KEY GUEST_TOKEN SHOT_DIR
// Prints what each page saw as JSON; screenshots go to SHOT_DIR.
import { CALL_ARGS, drive, sessionFor } from "./harness.mjs";

const [base, room, hostKey, guestToken, shots] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// What a page receives from the others: the remote tiles' playback and the
// peer connection's inbound counters.
async function received(page) {
  return page.evaluate(async () => {
    const tiles = [...document.querySelectorAll("#tiles .tile")].map((t) => ({
      name: t.querySelector(".name").textContent,
      flags: t.querySelector(".flags").textContent,
      width: t.querySelector("video").videoWidth,
      time: t.querySelector("video").currentTime,
      paused: t.querySelector("video").paused,
    }));
    const inbound = {};
    // `pc` is the page's peer connection (a top-level binding of call.js).
    (await pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp") {
        inbound[s.kind] = {
          packets: s.packetsReceived,
          framesDecoded: s.framesDecoded,
          audioEnergy: s.totalAudioEnergy,
        };
      }
    });
    return { tiles, inbound };
  });
}

async function rec(page) {
  return page.evaluate(() => ({
    shown: !document.getElementById("rec").hidden,
    paused: document.getElementById("rec").classList.contains("paused"),
    text: document.getElementById("rec-time").textContent,
  }));
}

async function waitFor(page, what, fn, arg, ms = 20000) {
  try {
    await page.waitForFunction(fn, arg, { timeout: ms, polling: 100 });
  } catch (e) {
    const state = await page.evaluate(async () => ({
      inbound: typeof pc === "object" && pc ? await pc.getStats().then((r) => [...r.values()]
        .filter((x) => x.type === "inbound-rtp").map((x) => `${x.kind} ${x.packetsReceived} dec=${x.framesDecoded} kf=${x.keyFramesDecoded} pli=${x.pliCount} nack=${x.nackCount}`)) : null,
      videos: [...document.querySelectorAll("#tiles video")].map((v) => [v.srcObject ? v.srcObject.getTracks().map((t) => t.kind + ":" + t.readyState + ":" + t.muted).join("/") : "none", v.readyState, v.paused]),
      status: document.getElementById("call-status")?.textContent,
      lobbyError: document.getElementById("lobby-error")?.textContent,
      tiles: [...document.querySelectorAll("#tiles .tile")].map((t) => [
        t.querySelector(".name").textContent, t.querySelector("video").videoWidth, t.querySelector("video").currentTime]),
      streams: typeof streams === "object" ? [...streams.keys()] : null,
      signalling: typeof pc === "object" && pc ? [pc.signalingState, pc.connectionState,
        pc.getTransceivers().map((x) => `${x.mid}:${x.direction}:${x.currentDirection}`).join(" ")] : null,
    })).catch((err) => err.message);
    throw new Error(`${what}: ${e.message.split("\n")[0]} ${JSON.stringify(state)}`);
  }
}

await drive(
  CALL_ARGS,
  async (host, result) => {
    const guest = await host.context().browser().newPage();
    guest.on("pageerror", (e) => (result.guestErrors ||= []).push(e.message));
    await host.setViewportSize({ width: 1280, height: 800 });
    await guest.setViewportSize({ width: 1280, height: 800 });

    // The host is signed in on the home page, finds the room under Calls
    // and follows its link.
    // The clipboard for the invite link, granted before the camera starts
    // (a grant replaces every permission: the camera's and microphone's
    // are granted with it, or their tracks end).
    await host.context().grantPermissions(["clipboard-read", "clipboard-write", "camera", "microphone"], { origin: base });
    await sessionFor(host, base, hostKey);
    await host.goto(`${base}/`);
    await host.click("#tab-calls");
    await waitFor(host, "the room listed", (id) => document.querySelector(`#room-list a[href="/call/${id}"]`) !== null, room);
    result.roomListed = await host.evaluate(() => document.querySelector("#room-list li").textContent);
    await host.click(`#room-list a[href="/call/${room}"]`);
    await host.waitForURL(`**/call/${room}`);
    await waitFor(host, "host's name filled in", () => document.getElementById("name").value !== "");
    // The lobby: camera and microphone pickers, and the microphone's level.
    await waitFor(host, "the devices listed", () => document.querySelectorAll("#cam-select option").length > 0 &&
      document.querySelectorAll("#mic-select option").length > 0);
    result.devices = await host.evaluate(() => ({
      cameras: document.querySelectorAll("#cam-select option").length,
      mics: document.querySelectorAll("#mic-select option").length,
    }));
    await waitFor(host, "the microphone meter moves", () => document.getElementById("mic-level").value > 0, undefined, 10000);
    await host.fill("#name", "Ann (host)");
    await host.click("#join");
    await waitFor(host, "host in the call", () => document.querySelectorAll("#tiles .tile").length === 1);

    await guest.goto(`${base}/call/${room}?token=${encodeURIComponent(guestToken)}`);
    result.guestNameField = await guest.evaluate(() => ({
      value: document.getElementById("name").value,
      disabled: document.getElementById("name").disabled,
    }));
    await guest.click("#join");

    // Both see two tiles, and the other's video plays.
    const remotePlays = () => {
      const t = [...document.querySelectorAll("#tiles .tile")];
      const v = t.find((x) => !x.querySelector(".name").textContent.endsWith("(you)"));
      return t.length === 2 && v && v.querySelector("video").videoWidth > 0 && v.querySelector("video").currentTime > 1;
    };
    await waitFor(host, "host sees the guest", remotePlays);
    await waitFor(guest, "guest sees the host", remotePlays);
    await waitFor(host, "host sees Record", () => !document.querySelector(".host-only").hidden);
    // The people list, and who speaks (the fake microphone beeps).
    await waitFor(host, "the guest is heard speaking", () =>
      [...document.querySelectorAll("#people-list li.speaking")].some((li) => li.textContent.includes("Bob")));
    result.people = await host.$$eval("#people-list li", (l) => l.map((x) => x.textContent));
    // Tiles share the window and grow with it; the controls stay in view.
    result.tileWidth1280 = await host.evaluate(() => document.querySelector("#tiles .tile").getBoundingClientRect().width);
    await host.setViewportSize({ width: 1600, height: 900 });
    await host.waitForTimeout(200);
    result.tileWidth1600 = await host.evaluate(() => document.querySelector("#tiles .tile").getBoundingClientRect().width);
    await host.setViewportSize({ width: 390, height: 844 });
    await host.waitForTimeout(200);
    result.barOnPhone = await host.evaluate(() => {
      window.scrollTo(0, 0);
      const r = document.querySelector(".call-bar").getBoundingClientRect();
      return { top: r.top, bottom: r.bottom, height: innerHeight, pageHeight: document.documentElement.scrollHeight };
    });
    await host.setViewportSize({ width: 1280, height: 800 });
    // The host invites someone else from inside the call: the link is copied.
    await host.click("#invite");
    await host.fill("#invite-name", "Gus");
    await host.click("#invite-create");
    await waitFor(host, "the invite link", () => document.getElementById("invite-url").value !== "");
    result.invite = await host.evaluate(async () => ({
      url: document.getElementById("invite-url").value,
      clipboard: await navigator.clipboard.readText(),
    }));
    result.guestIsHost = await guest.evaluate(() => !document.querySelector(".host-only").hidden);

    // The guest turns the camera off: the host's tile for them says so.
    await guest.click("#cam");
    await waitFor(host, "camera off shown", () =>
      [...document.querySelectorAll("#tiles .flags")].some((f) => f.textContent.includes("camera off")));
    await guest.click("#cam");
    await waitFor(host, "camera on again", () =>
      [...document.querySelectorAll("#tiles .flags")].every((f) => !f.textContent.includes("camera off")));

    // Record: both pages show REC. Each step's time is taken as the host
    // clicks and as the pages show it: the server acted in between.
    const recordClickAt = Date.now();
    await host.click("#record");
    await waitFor(host, "REC on the host", () => !document.getElementById("rec").hidden);
    await waitFor(guest, "REC on the guest", () => !document.getElementById("rec").hidden);
    result.guestNotice = await guest.evaluate(() => {
      const n = document.getElementById("recorded-notice");
      return n.hidden ? null : n.textContent.trim();
    });
    const t0 = Date.now();
    await sleep(3000);
    result.recAfter3s = { host: await rec(host), guest: await rec(guest) };
    // The host sees a preview of the grid being recorded (its live
    // segments); the guest does not.
    const previewing = () => {
      const v = document.getElementById("rec-preview-video");
      return !document.getElementById("rec-preview").hidden && v.videoWidth > 0 && v.currentTime > 0.5;
    };
    try {
      await waitFor(host, "the host's preview plays", previewing, undefined, 20000);
    } catch { /* reported below */ }
    result.preview = await host.evaluate(() => {
      const v = document.getElementById("rec-preview-video");
      const b = v.buffered;
      return { shown: !document.getElementById("rec-preview").hidden, width: v.videoWidth, height: v.videoHeight, time: v.currentTime,
        paused: v.paused, ready: v.readyState, buffered: b.length ? [b.start(0), b.end(b.length - 1)] : [] };
    });
    result.guestPreviewShown = await guest.evaluate(() => !document.getElementById("rec-preview").hidden);
    await host.screenshot({ path: `${shots}/call-host.png` });
    await guest.screenshot({ path: `${shots}/call-guest.png` });

    const pauseClickAt = Date.now();
    await host.click("#pause");
    await waitFor(guest, "guest sees the pause", () => document.getElementById("rec").classList.contains("paused"));
    const pausedAt = Date.now();
    await sleep(1500);
    result.recPaused = await rec(guest);
    const resumeClickAt = Date.now();
    await host.click("#pause"); // now "Resume"
    await waitFor(guest, "guest sees the resume", () => !document.getElementById("rec").classList.contains("paused"));
    const resumedAt = Date.now();
    await sleep(2000);
    result.recBeforeStop = { host: await rec(host), guest: await rec(guest) };
    await host.click("#stop");
    const stoppedAt = Date.now();
    result.recordedMs = pausedAt - t0 + (stoppedAt - resumedAt);
    await waitFor(host, "REC gone on the host", () => document.getElementById("rec").hidden);
    const stopSeenAt = Date.now();
    // What the server recorded lies between: started after the click and
    // before both pages showed it, and so on for each step.
    result.recordedMinMs = (pauseClickAt - t0) + (stoppedAt - resumedAt);
    result.recordedMaxMs = (pausedAt - recordClickAt) + (stopSeenAt - resumeClickAt);
    await waitFor(guest, "REC gone on the guest", () => document.getElementById("rec").hidden);
    result.guestNoticeAfter = await guest.evaluate(() => document.getElementById("recorded-notice").hidden);
    await waitFor(host, "completed in the host's list",
      () => document.querySelector('#recordings li[data-status="completed"]') !== null, undefined, 60000);
    await waitFor(guest, "completed in the guest's list",
      () => document.querySelector('#recordings li[data-status="completed"]') !== null, undefined, 60000);
    result.recordingId = await host.evaluate(() => document.querySelector("#recordings li").dataset.id);
    result.hostList = await host.evaluate(() => document.querySelector("#recordings li").textContent);
    result.guestList = await guest.evaluate(() => document.querySelector("#recordings li").textContent);

    result.host = await received(host);
    result.guest = await received(guest);
    await host.screenshot({ path: `${shots}/call-host-done.png` });

    // The guest leaves: the host's page is back to one tile.
    await guest.click("#leave");
    await waitFor(host, "the guest's tile goes", () => document.querySelectorAll("#tiles .tile").length === 1);
    result.guestEnded = await guest.evaluate(() => !document.getElementById("ended").hidden);
    await host.click("#leave");

    // On the home page the call's recording lists each person's tracks,
    // and each plays on its own: Bob's picture, then his sound.
    await host.goto(`${base}/`);
    const li = `#rec-list li[data-id="${result.recordingId}"]`;
    await host.waitForSelector(`${li}[data-status="completed"]`, { timeout: 20000 });
    await host.click(`${li} details.tracks summary`);
    result.trackButtons = await host.$$eval(`${li} button.play-track`, (b) => b.map((x) => x.textContent));
    result.played = {};
    for (const kind of ["picture", "sound"]) {
      const label = result.trackButtons.find((t) => t.startsWith("Bob (guest) · " + kind));
      await host.click(`${li} button.play-track:has-text("${label}")`);
      await waitFor(host, "the track plays", () => document.getElementById("player-video").currentTime > 1);
      result.played[kind] = await host.evaluate(() => {
        const v = document.getElementById("player-video");
        return { title: document.getElementById("player-title").textContent, width: v.videoWidth, src: v.src.split("?")[0] };
      });
      await host.click("#player-close");
    }
  },
);
