// Plays a recording's live HLS playlist in a <video>, two segments behind
// its edge: with hls.js (served by the server at /vendor/hls.js, loaded on
// first use) where the browser has Media Source, else natively (Safari on
// older iPhones).
// The watch page and the call page's preview use it.
//   const handle = await TapedeckLive.play(video, src); ... handle.stop();
// `play` resolves to null where neither can play it.
(() => {
  function loadHls() {
    if (window.Hls) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = "/vendor/hls.js";
      s.onload = resolve;
      s.onerror = reject;
      document.head.append(s);
    });
  }

  async function play(video, src) {
    video.muted = true;
    let hls = null;
    // hls.js first where the browser has Media Source (hls.js's own
    // advice): Chromium on Linux answers "maybe" for HLS and then did not
    // play a live playlist here.
    const loaded = await loadHls().then(() => true, () => false);
    if (loaded && window.Hls.isSupported()) {
      hls = new window.Hls({ liveSyncDurationCount: 2 });
      hls.loadSource(src);
      hls.attachMedia(video);
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = src;
    } else {
      return null;
    }
    video.play().catch(() => { /* the viewer presses play */ });
    return {
      stop() {
        if (hls) hls.destroy();
        video.removeAttribute("src");
        video.load();
      },
    };
  }

  window.TapedeckLive = { play };
})();
