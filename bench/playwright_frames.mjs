// The usual way to record a page frame by frame with Playwright (as
// timecut and timesnap do with Puppeteer): the page's clock is faked
// (`page.clock`: Date, timers, performance.now and requestAnimationFrame),
// run one frame's time forward, a screenshot taken, and the PNGs piped to
// ffmpeg (x264 veryfast, CRF 23). Debian's Chromium, headless.
// Usage: node bench/playwright_frames.mjs URL OUT.mp4 WIDTH HEIGHT FPS SECONDS
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
const require = createRequire(new URL('../tests/e2e/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const [url, out, w, h, fps, secs] = process.argv.slice(2);
const [W, H, F] = [Number(w), Number(h), Number(fps)];
const browser = await chromium.launch({ executablePath: '/usr/lib/chromium/chromium', args: ['--no-sandbox'] });
// Above 1080p, a half-size viewport at scale 2, as tapedeck does.
const scale = W > 1920 ? 2 : 1;
const context = await browser.newContext({ viewport: { width: W / scale, height: H / scale }, deviceScaleFactor: scale });
const page = await context.newPage();
await page.clock.install({ time: 0 });
await page.goto(url);
const ff = spawn('ffmpeg', ['-v', 'error', '-y', '-f', 'image2pipe', '-framerate', String(F), '-c:v', 'png', '-i', 'pipe:0',
  '-c:v', 'libx264', '-preset', 'veryfast', '-crf', '23', '-pix_fmt', 'yuv420p', '-r', String(F), out],
  { stdio: ['pipe', 'inherit', 'inherit'] });
const frames = Number(secs) * F;
const started = Date.now();
for (let k = 0; k < frames; k++) {
  // Whole milliseconds with the remainder carried, as tapedeck advances virtual time.
  const step = Math.floor((k + 1) * 1000 / F) - Math.floor(k * 1000 / F);
  await page.clock.runFor(step);
  const png = await page.screenshot({ type: 'png' });
  if (!ff.stdin.write(png)) await new Promise((r) => ff.stdin.once('drain', r));
}
ff.stdin.end();
await new Promise((r) => ff.on('close', r));
const wall = (Date.now() - started) / 1000;
console.log(JSON.stringify({ frames, wall_s: wall }));
await browser.close();
