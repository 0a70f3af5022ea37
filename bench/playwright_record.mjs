// Records a page with Playwright's recordVideo on Debian's Chromium.
// Usage: node bench/playwright_record.mjs URL OUT_DIR WIDTH HEIGHT SECONDS
// Prints the path of the video it wrote.
import { createRequire } from 'node:module';
const require = createRequire(new URL('../tests/e2e/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const [url, dir, w, h, secs] = process.argv.slice(2);
const size = { width: Number(w), height: Number(h) };
const browser = await chromium.launch({ executablePath: '/usr/lib/chromium/chromium', args: ['--no-sandbox'] });
const context = await browser.newContext({ viewport: size, recordVideo: { dir, size } });
const page = await context.newPage();
await page.goto(url);
await page.waitForTimeout(Number(secs) * 1000);
const video = page.video();
await context.close();
console.log(await video.path());
await browser.close();
