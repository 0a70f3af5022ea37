// Every word the pages show people about the server: kinds of recording,
// statuses, errors by code, why a call ended. Plain English here; the
// server's code and message go only in a details line under it. Both pages
// load this file first; a test checks each code here is in the server's
// catalogue (tapedeck_core::codes).
"use strict";

const Words = (() => {
  const kinds = {
    frames: "Live camera",
    web: "Web page",
    room: "Call",
    upload: "Recorded in a browser",
  };
  const statuses = {
    pending: "Waiting to start",
    recording: "Recording",
    paused: "Paused",
    processing: "Saving",
    completed: "Ready",
    failed: "Failed",
    cancelled: "Cancelled",
  };
  // Sentences by code. A function gets the server's message, for errors
  // whose message names what to fix (a form field, a script step).
  const errors = {
    unauthorized: "You are signed out, or your key or session is no longer valid. Sign in again.",
    session_expired: "Your sign-in has ended (it expired, you signed out elsewhere, or its key was revoked). Sign in again.",
    bad_credentials: "The user name or password is wrong.",
    too_many_attempts: "Too many wrong passwords for this user. Wait ten minutes and try again.",
    csrf_failed: "The page was out of date. Reload it and try again.",
    oidc_failed: "Signing in with your company's account failed. Try again, or ask your administrator (the server's log says why).",
    not_found: "It is not there any more (deleted, or the link is wrong).",
    not_ready: "It is not ready yet.",
    not_admin: "Only an administrator may do that.",
    not_room_host: "Only the host of the call may do that.",
    room_closed: "This call has ended.",
    room_full: "This call is full.",
    invite_invalid: "This invite link does not work (it was changed or cut short). Ask the host for a new one.",
    invite_expired: "This invite link has expired. Ask the host for a new one.",
    wrong_room: "This invite is for another call.",
    link_expired: "This link has expired.",
    invalid_signature: "This link does not work (it was changed or cut short).",
    quota_exceeded: "Your storage is full. Delete some recordings to make room.",
    too_many_recordings: "You have as many recordings running as you may. Stop one first.",
    too_many_rooms: "You have as many open rooms as you may. Close one first.",
    too_many_sockets: "This account has too many pages open. Close some tabs.",
    too_many_connecting: "Too many people are joining at once. Try again in a moment.",
    too_many_sessions: "You are already in this call in other tabs or devices. Leave one of them first.",
    server_busy: "The server is busy. Try again in a minute.",
    queue_full: "The server has too much waiting. Try again later.",
    source_blocked: "That address is not allowed: it is a private or local address.",
    source_unreachable: "The page could not be reached. Check the address.",
    tls_error: "The page's secure connection failed (its certificate).",
    page_load_timeout: "The page took too long to load.",
    page_unresponsive: "The page stopped responding.",
    selector_not_found: (m) => "The script points at something that is not on the page: " + m,
    invalid_script: (m) => "The script has a mistake: " + m,
    script_error: (m) => "The script could not be played: " + m,
    invalid_source: (m) => "Check the form: " + m,
    invalid_output: (m) => "Check the outputs: " + m,
    invalid_settings: (m) => "Check the form: " + m,
    invalid_request: (m) => "Check the form: " + m,
    invalid_media: "The recording could not be read as video.",
    no_video: "Nothing was recorded.",
    too_large: "The recording is larger than this server takes.",
    upload_expired: "The browser stopped sending this recording, and it was given up.",
    upload_closed: "This recording no longer takes data (it was stopped).",
    disk_full: "The server's disk is full.",
    encoder_failed: "The video could not be encoded.",
    capture_failed: "The page could not be captured.",
    browser_crashed: "The browser recording the page crashed.",
    grid_failed: "The call's video could not be put together; each person's tracks are kept.",
    storage_failed: "The recording could not be stored.",
    recovery_failed: "The recording could not be recovered after the server restarted.",
  };
  const ends = {
    left: "You left the call.",
    room_closed: "The host ended the call.",
    signalling_stalled: "Your connection to the call stalled.",
    node_lost: "The server running the call stopped.",
    disconnected: "Your connection to the call was lost.",
  };
  const connection = {
    new: "",
    connecting: "Connecting…",
    connected: "Connected.",
    disconnected: "The connection dropped; trying again…",
    failed: "The connection failed. Leave and join again.",
    closed: "",
  };
  const cap = (s) => (s ? s[0].toUpperCase() + s.slice(1) : s);

  return {
    codes: () => Object.keys(errors),
    kind: (k) => kinds[k] || cap(k),
    status: (s) => statuses[s] || cap(s),
    // {text, details} for an error {code, message}.
    error(e) {
      const code = e && e.code;
      const said = errors[code];
      const message = (e && e.message) || "";
      const text = typeof said === "function" ? said(message) : said || "Something went wrong.";
      return { text, details: [code, message].filter(Boolean).join(": ") };
    },
    connection: (state) => connection[state] ?? state,
    // A render's progress: frames done of planned, time spent and left.
    progress(done, planned, spentS, leftS) {
      const clock = (s) => { s = Math.max(0, Math.round(s)); return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0"); };
      const pct = planned ? Math.floor((100 * done) / planned) : 0;
      return `${pct}% · frame ${done} of ${planned} · ${clock(spentS)} so far` +
        (leftS == null ? "" : ` · about ${clock(leftS)} left`);
    },
    // Why a call ended for this page, as its heading says it.
    ended: (reason) => ends[reason] || "The call ended for you.",
    // The failure of a request, given what the server answered.
    fail(status, body) {
      const e = body && body.error ? body.error : { code: status === 401 ? "unauthorized" : null, message: "HTTP " + status };
      const err = new Error(Words.error(e).text);
      err.code = e.code;
      err.status = status;
      err.details = Words.error(e).details;
      return err;
    },
    // Shows an error in `el`: the sentence, then the code in a details line.
    // Errors of the browser itself (a camera refused) have no details.
    show(el, err) {
      if (!err) { el.replaceChildren(); return; }
      const line = document.createElement("span");
      line.className = "why";
      line.textContent = err.message;
      if (!err.details) { el.replaceChildren(line); return; }
      const small = document.createElement("small");
      small.className = "details";
      small.textContent = err.details;
      el.replaceChildren(line, " ", small);
    },
  };
})();
