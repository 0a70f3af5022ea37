// Shared by the page scripts: launches Debian's Chromium, opens a page that
// collects its errors, runs `body(page, result)`, and prints `result` as the
// last line (with `pageErrors`), or fails with what was gathered so far.
import { chromium } from "playwright-core";

// Chromium's switches for a call page: fake camera and microphone, allowed
// without asking, loopback candidates, sound without a gesture.
export const CALL_ARGS = [
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream",
  "--allow-loopback-in-peer-connection",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
  "--autoplay-policy=no-user-gesture-required",
];

export async function drive(extraArgs, body) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/lib/chromium/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", ...extraArgs,
    ],
  });
  const result = {};
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await body(page, result);
    result.pageErrors = errors;
    console.log(JSON.stringify(result));
  } catch (e) {
    console.error("e2e failed:", e.message, JSON.stringify(result));
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

// Signs `page` in with an API key the way a person does: the sign-in
// form's "Sign in with an API key" (the page must show the form).
export async function keySignIn(page, key) {
  await page.evaluate(() => { document.getElementById("key-signin").open = true; });
  await page.fill("#token", key);
  await page.click("#key-signin-submit");
}

// Gives the browser of `page` a session for `key` (its cookie), as the
// sign-in form would, without going through the form.
export async function sessionFor(page, base, key) {
  await page.goto(base + "/healthz");
  const status = await page.evaluate(async (k) => {
    const r = await fetch("/v1/session", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ api_key: k }) });
    return r.status;
  }, key);
  if (status !== 200) throw new Error("signing in with the key: HTTP " + status);
}

// Problems with the page as it stands: overflow and controls out of reach.
export async function layoutProblems(page, where) {
  return page.evaluate((where) => {
    const out = [];
    const doc = document.documentElement;
    if (doc.scrollWidth > doc.clientWidth) out.push(`${where}: scrolls sideways (${doc.scrollWidth} > ${doc.clientWidth})`);
    const view = [...document.querySelectorAll("main > section, main > article")].find((s) => !s.hidden) || document.body;
    const controls = [...document.querySelectorAll("header button, header a"), ...view.querySelectorAll("button, a, input, select, textarea")];
    for (const el of controls) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue; // not shown
      const name = `${el.tagName.toLowerCase()}#${el.id || ""}${el.className ? "." + el.className : ""} "${(el.textContent || el.value || "").trim().slice(0, 30)}"`;
      if (r.left < -1 || r.right > doc.clientWidth + 1) {
        out.push(`${where}: ${name} is outside the screen's width (${Math.round(r.left)}..${Math.round(r.right)})`);
        continue;
      }
      el.scrollIntoView({ block: "center", inline: "nearest" });
      const c = el.getBoundingClientRect();
      const hit = document.elementFromPoint(c.left + c.width / 2, c.top + c.height / 2);
      if (!hit || !(hit === el || el.contains(hit) || hit.contains(el) || (el.tagName === "INPUT" && hit.closest("label")?.contains(el)))) {
        out.push(`${where}: ${name} is covered by ${hit ? hit.tagName.toLowerCase() + "#" + hit.id : "nothing"}`);
      }
    }
    window.scrollTo(0, 0);
    return out;
  }, where);
}

