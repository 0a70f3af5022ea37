// Renders reference frames of bench/pages/clock.html (any of its modes) losslessly (PNG), one
// per line of a list "T_MS N OUT.png", at WIDTHxHEIGHT, in the given browser
// binary with the given flags (each recorder's frames are compared with
// renders by the same browser, so only the recording is measured).
// Usage: node bench/render_refs.mjs URL WIDTH HEIGHT LIST BROWSER [FLAGS...]
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
const require = createRequire(new URL('../tests/e2e/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const [url, w, h, list, executablePath, ...flags] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath, args: ['--no-sandbox', ...flags] });
const page = await browser.newPage({ viewport: { width: Number(w), height: Number(h) } });
for (const line of readFileSync(list, 'utf8').split('\n').filter(Boolean)) {
  const [t, n, out] = line.split(' ');
  const u = new URL(url);
  u.searchParams.set('t', t);
  u.searchParams.set('n', n);
  await page.goto(u.href);
  await page.waitForFunction(() => document.title === 'ready');
  await page.screenshot({ path: out });
}
await browser.close();
