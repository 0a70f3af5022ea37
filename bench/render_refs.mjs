// Renders reference frames of bench/pages/clock.html losslessly (PNG), one
// per line of a list "T_MS N OUT.png", at WIDTHxHEIGHT.
// Usage: node bench/render_refs.mjs URL WIDTH HEIGHT LIST
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
const require = createRequire(new URL('../tests/e2e/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const [url, w, h, list] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: '/usr/lib/chromium/chromium', args: ['--no-sandbox'] });
const page = await browser.newPage({ viewport: { width: Number(w), height: Number(h) } });
for (const line of readFileSync(list, 'utf8').split('\n').filter(Boolean)) {
  const [t, n, out] = line.split(' ');
  await page.goto(`${url}?t=${t}&n=${n}`);
  await page.waitForFunction(() => document.title === 'ready');
  await page.screenshot({ path: out });
}
await browser.close();
