// The call page's screen sharing. At join the page keeps two media lines
// for a screen (its picture and sound, sending nothing) and tells the
// server their mids; "Share screen" puts the screen the browser gives
// into them (no renegotiation), and says so ({type: "media", screen}).
// The others see it as a tile of its own, the stream `peer_N-screen`,
// while its sharer says it shares. Loaded before call.js, which calls
// screen.keep(pc) at join, screen.render(list) with the participants, and
// screen.stop() when the call ends.
"use strict";

const screen = (() => {
  let kept = null; // {video, audio}: the transceivers kept for it
  let shared = null; // the MediaStream being shared
  const shown = new Map(); // `${peer}-screen` -> tile element

  function button() {
    const b = $("share");
    b.setAttribute("aria-pressed", String(!!shared));
    b.textContent = shared ? "Stop sharing" : "Share screen";
  }

  async function start() {
    try {
      shared = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: true });
    } catch (e) {
      // Cancelled by the person, or refused: nothing changes.
      status("Screen not shared: " + e.message);
      return;
    }
    const v = shared.getVideoTracks()[0] || null;
    const a = shared.getAudioTracks()[0] || null;
    await kept.video.sender.replaceTrack(v);
    await kept.audio.sender.replaceTrack(a);
    // The browser's own "Stop sharing" ends the track.
    if (v) v.onended = () => stop();
    button();
    announce();
  }

  async function stop() {
    if (!shared) return;
    for (const t of shared.getTracks()) t.stop();
    shared = null;
    if (kept && pc && pc.signalingState !== "closed") {
      await kept.video.sender.replaceTrack(null).catch(() => {});
      await kept.audio.sender.replaceTrack(null).catch(() => {});
    }
    button();
    announce();
  }

  function announce() {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({
        type: "media",
        audio: $("mic").getAttribute("aria-pressed") === "true",
        video: $("cam").getAttribute("aria-pressed") === "true",
        screen: !!shared,
      }));
    }
  }

  return {
    // Keeps the screen's two media lines in `pc`, before its offer.
    keep(pc) {
      kept = {
        video: pc.addTransceiver("video", { direction: "sendonly" }),
        audio: pc.addTransceiver("audio", { direction: "sendonly" }),
      };
      button();
    },
    // Their mids, once the offer is set, for the join message.
    mids() {
      return kept ? [kept.video.mid, kept.audio.mid].filter(Boolean) : [];
    },
    sharing: () => !!shared,
    toggle: () => (shared ? stop() : start()),
    stop,
    // A tile for each participant who shares now, on the stream the
    // server sends their screen in; gone when they stop.
    render(list) {
      const want = new Set(list.filter((p) => p.screen && p.peer !== me.peer).map((p) => p.peer + "-screen"));
      for (const [key, el] of shown) {
        if (!want.has(key)) {
          el.remove();
          shown.delete(key);
        }
      }
      for (const p of list) {
        const key = p.peer + "-screen";
        if (!want.has(key) || shown.has(key)) continue;
        const el = document.createElement("div");
        el.className = "tile screen";
        el.dataset.peer = key;
        const video = document.createElement("video");
        video.autoplay = true;
        video.playsInline = true;
        const name = document.createElement("span");
        name.className = "name";
        name.textContent = p.name + "'s screen";
        el.append(video, name);
        $("tiles").prepend(el);
        shown.set(key, el);
      }
      for (const [key, el] of shown) {
        // A fresh stream whenever its tracks change (the sound may come
        // in a later offer than the picture).
        const stream = streams.get(key);
        const ids = stream ? stream.getTracks().map((x) => x.id).sort().join() : "";
        if (stream && el.dataset.tracks !== ids) {
          el.dataset.tracks = ids;
          const video = el.querySelector("video");
          video.srcObject = new MediaStream(stream.getTracks());
          video.play().catch(() => {});
        }
      }
    },
    // The call ended: sharing stops, the others' screens go.
    clear() {
      stop();
      for (const el of shown.values()) el.remove();
      shown.clear();
      kept = null;
    },
  };
})();
