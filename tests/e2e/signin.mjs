// Signing in on the web page, as a person does, in Debian's Chromium.
//   node signin.mjs password BASE USER PASSWORD
//     a wrong password, then the right one; the cookie's flags; a change
//     without the CSRF token; sign out.
//   node signin.mjs key BASE KEY STATE_FILE     sign in with an API key, keep the browser's state
//   node signin.mjs reopen BASE STATE_FILE      open the page again with that state
//   node signin.mjs oidc BASE LOGIN             "Sign in with ..." at the identity provider
// Prints JSON of what the page showed.
import { chromium } from "playwright-core";
import { keySignIn } from "./harness.mjs";

const [mode, base, ...rest] = process.argv.slice(2);

const why = (page) => page.evaluate(() => ({
  text: document.querySelector("#signin-error .why")?.textContent ?? null,
  details: document.querySelector("#signin-error .details")?.textContent ?? null,
}));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/lib/chromium/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
});
const result = { pageErrors: [] };
try {
  const context = await browser.newContext(mode === "reopen" ? { storageState: rest[0] } : {});
  const page = await context.newPage();
  page.on("pageerror", (e) => result.pageErrors.push(e.message));
  await page.setViewportSize({ width: 1280, height: 800 });

  if (mode === "password") {
    const [user, password] = rest;
    // A "next" that a browser would resolve to another site is not followed.
    await page.goto(base + "/?next=/%09/evil.example");
    await page.waitForSelector("#signin-view:not([hidden])");
    await page.fill("#user-name", user);
    await page.fill("#password", password + "-wrong");
    await page.click("#signin");
    await page.waitForSelector("#signin-error .why");
    result.wrong = await why(page);
    await page.fill("#password", password);
    await page.click("#signin");
    await page.waitForSelector("#live.on");
    result.user = await page.textContent("#user");
    result.urlAfterSignIn = page.url();
    for (const next of ["/%5Cevil.example", "//evil.example", "https://evil.example/"]) {
      await page.goto(base + "/?next=" + next);
      await page.waitForSelector("#live.on");
    }
    result.urlAfterNexts = page.url();
    const cookie = (await context.cookies()).find((c) => c.name === "tapedeck_session");
    result.cookie = cookie && { httpOnly: cookie.httpOnly, sameSite: cookie.sameSite, secure: cookie.secure, path: cookie.path, value: cookie.value };
    result.scriptSeesCookie = await page.evaluate(() => document.cookie.includes("tapedeck_session"));
    // A change the page makes carries the CSRF token; the same change
    // without it (what another site could make this browser send) does not pass.
    result.withToken = await page.evaluate(async () => (await fetch("/v1/rooms", {
      method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": session.csrf }, body: JSON.stringify({ name: "by the page" }),
    })).status);
    result.withoutToken = await page.evaluate(async () => {
      const r = await fetch("/v1/rooms", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name: "forged" }) });
      return { status: r.status, body: await r.json() };
    });
    await page.click("#signout");
    await page.waitForSelector("#signin-view:not([hidden])");
    result.signedOutNote = await page.textContent("#signin-note");
    result.navAfterSignOut = await page.isVisible("#nav");
    result.sessionAfterSignOut = await page.evaluate(async () => (await fetch("/v1/session")).status);
  } else if (mode === "key") {
    const [key, stateFile] = rest;
    await page.goto(base + "/");
    await keySignIn(page, key);
    await page.waitForSelector("#live.on");
    result.user = await page.textContent("#user");
    await context.storageState({ path: stateFile });
  } else if (mode === "reopen") {
    await page.goto(base + "/");
    await page.waitForSelector("#signin-error .why");
    result.reopened = await why(page);
    result.navShown = await page.isVisible("#nav");
  } else if (mode === "oidc") {
    const [login] = rest;
    // A callback nobody started comes back to the form, saying so.
    await page.goto(base + "/v1/session/oidc/callback?code=forged&state=forged");
    await page.waitForSelector("#signin-error .why");
    result.forged = await why(page);
    result.urlAfterForged = page.url();
    // The real thing: the provider's button, its login and consent pages.
    const asked = [];
    page.on("request", (r) => { if (r.url().includes("/auth?")) asked.push(r.url()); });
    await page.waitForSelector("#oidc-row:not([hidden])");
    result.button = await page.textContent("#oidc-signin");
    await page.click("#oidc-signin");
    await page.waitForSelector("input[name=login]", { timeout: 20000 });
    await page.fill("input[name=login]", login);
    await page.fill("input[name=password]", "anything");
    await page.click("button[type=submit]");
    // The consent page (first sign-in of this account to this client).
    await page.waitForURL((u) => u.toString().startsWith(base) || u.toString().includes("/interaction/"), { timeout: 20000 });
    if (!page.url().startsWith(base)) {
      await page.click("button[type=submit]");
    }
    await page.waitForURL((u) => u.toString().startsWith(base), { timeout: 20000 });
    await page.waitForSelector("#live.on", { timeout: 20000 });
    result.user = await page.textContent("#user");
    result.authorizeUrl = asked[0] || null;
    result.session = await page.evaluate(async () => (await fetch("/v1/session")).json());
    const cookie = (await context.cookies()).find((c) => c.name === "tapedeck_session");
    result.cookie = cookie && { httpOnly: cookie.httpOnly, sameSite: cookie.sameSite };
    result.flowCookieLeft = (await context.cookies()).some((c) => c.name === "tapedeck_oidc");
  }
  console.log(JSON.stringify(result));
} catch (e) {
  console.error("e2e failed:", e.message, JSON.stringify(result));
  process.exitCode = 1;
} finally {
  await browser.close();
}
