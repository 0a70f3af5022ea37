// The call page's sound levels: who is speaking (marked on their tile
// and in the people list) and the lobby's microphone meter. Loaded before
// call.js, which feeds it streams (levels.watch); the marks read call.js's
// state ($, me, tiles) when they run.
"use strict";

// Who is speaking: the level of each person's sound (the page's own
// microphone measured here; the others' as the connection receives them),
// held a moment so the mark does not flicker.
const levels = (() => {
  const ctx = new AudioContext();
  const meters = new Map(); // key -> analyser
  const loud = new Map(); // key -> last time above the threshold
  return {
    watch(key, stream) {
      const track = stream.getAudioTracks()[0];
      if (!track) return;
      ctx.resume().catch(() => {});
      const a = ctx.createAnalyser();
      a.fftSize = 512;
      ctx.createMediaStreamSource(new MediaStream([track])).connect(a);
      meters.set(key, a);
    },
    // 0..1, the loudness now of `key`'s sound.
    level(key) {
      const a = meters.get(key);
      if (!a) return 0;
      const buf = new Float32Array(a.fftSize);
      a.getFloatTimeDomainData(buf);
      let sum = 0;
      for (const x of buf) sum += x * x;
      return Math.min(1, Math.sqrt(sum / buf.length) * 4);
    },
    heard(key, level) {
      if (level > 0.02) loud.set(key, Date.now());
    },
    speaking: (key) => Date.now() - (loud.get(key) || 0) < 700,
  };
})();

// Speaking marks and the lobby's microphone meter, five times a second.
setInterval(() => {
  const mine = levels.level("me");
  $("mic-level").value = mine;
  if (!me) return;
  const micOn = $("mic").getAttribute("aria-pressed") === "true";
  levels.heard(me.peer, micOn ? mine : 0);
  for (const [peer, t] of tiles) {
    if (peer !== me.peer) levels.heard(peer, t.mic === false ? 0 : levels.level(peer));
    const on = levels.speaking(peer);
    t.el.classList.toggle("speaking", on);
    const li = document.querySelector(`#people-list li[data-peer="${peer}"]`);
    if (li) li.classList.toggle("speaking", on);
  }
}, 200);
