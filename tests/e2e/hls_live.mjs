// Plays a recording's live HLS with hls.js (served by the binary) in
// Debian's Chromium and reads the barcode of the picture on screen every
// 250 ms: one JSON line per reading ({counter, clock, current, edge, at}), then
// {"done": true, ...} after SECONDS.
//
// node hls_live.mjs BASE ID TOKEN SECONDS [PLAYLIST_URL]
// (bench/outputs_bench.py gives another server's playlist, and reads each
// line's `at`, the reader's clock when it read the picture.)
import { chromium } from 'playwright-core';
import { readVideoMark } from './barcode.mjs';

const [base, id, token, seconds, other] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/lib/chromium/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--autoplay-policy=no-user-gesture-required'],
});
try {
  const page = await browser.newPage();
  // The player's page is on the server's own origin, as the web page is.
  const html = `<!doctype html><video id="v" muted playsinline></video>
    <script src="${base}/vendor/hls.js"></script>`;
  await page.route(`${base}/hls-player-test`, (r) => r.fulfill({ body: html, contentType: 'text/html' }));
  await page.goto(`${base}/hls-player-test`);
  await page.waitForFunction(() => typeof window.Hls === 'function');
  const src = other || `${base}/v1/recordings/${id}/hls/index.m3u8?token=${encodeURIComponent(token)}`;
  const supported = await page.evaluate((src) => {
    const v = document.getElementById('v');
    if (!window.Hls.isSupported()) return false;
    const hls = new window.Hls({ liveSyncDurationCount: 2 });
    window.hls = hls;
    window.errors = [];
    hls.on(window.Hls.Events.ERROR, (_, d) => window.errors.push(`${d.type} ${d.details} ${d.fatal}`));
    hls.loadSource(src);
    hls.attachMedia(v);
    hls.on(window.Hls.Events.MANIFEST_PARSED, () => v.play());
    return true;
  }, src);
  if (!supported) throw new Error('hls.js: MSE is not supported here');
  const lines = [];
  const until = Date.now() + Number(seconds) * 1000;
  while (Date.now() < until) {
    await page.waitForTimeout(250);
    const r = await page.evaluate((read) => {
      const v = document.getElementById('v');
      const edge = window.hls.levels?.[window.hls.currentLevel]?.details?.edge ?? null;
      // eslint-disable-next-line no-new-func
      const mark = new Function(`return (${read})`)()('v');
      return { counter: mark ? mark.counter : null, clock: mark ? mark.clock : null, current: v.currentTime, edge, width: v.videoWidth, at: Date.now() };
    }, readVideoMark.toString());
    lines.push(r);
    console.log(JSON.stringify(r));
  }
  const errors = await page.evaluate(() => window.errors.filter((e) => e.endsWith('true')));
  console.log(JSON.stringify({ done: true, errors, lines }));
} finally {
  await browser.close();
}
