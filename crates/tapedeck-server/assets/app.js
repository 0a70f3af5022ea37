// tapedeck web page: sign in, recordings with live status, camera recorder,
// web page recordings.
"use strict";

const $ = (id) => document.getElementById(id);
// The signed-in session ({user, admin, via, csrf}); the browser holds its
// cookie (HttpOnly: this script never sees it).
let session = null;
let events = null;
const rows = new Map();

// Headers that go with a change: the session's CSRF token.
function auth() {
  return session ? { "X-CSRF-Token": session.csrf } : {};
}

async function api(method, path, body) {
  const r = await fetch(path, {
    method,
    headers: { ...(method === "GET" ? {} : auth()), ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* a proxy's HTML page */ }
  if (!r.ok) {
    const err = Words.fail(r.status, data);
    if (r.status === 401 && session) signedOut(err);
    throw err;
  }
  return data;
}

// The session ended (expired, signed out elsewhere, its key revoked): back
// to the sign-in form, saying why.
function signedOut(err) {
  session = null;
  if (events) { events.onclose = null; events.close(); events = null; }
  $("nav").hidden = true;
  rows.clear();
  $("rec-list").replaceChildren();
  showSignIn();
  Words.show($("signin-error"), err);
}

function show(view) {
  for (const v of ["signin-view", "recordings-view", "record-view", "camera-view", "web-view", "calls-view"]) $(v).hidden = v !== view;
  $("tab-record").classList.toggle("active", view === "record-view");
  $("tab-calls").classList.toggle("active", view === "calls-view");
  if (view === "calls-view") loadRooms();
  $("tab-recordings").classList.toggle("active", view === "recordings-view");
  $("tab-camera").classList.toggle("active", view === "camera-view");
  $("tab-web").classList.toggle("active", view === "web-view");
  if (view === "camera-view") startPreview();
  else if (!timer) stopPreview();
  if (view === "record-view") { showLeftovers(); brPreview(); }
  else if (!br) brPreviewStop();
}

// A path of this server to go to, or null: resolved the way the browser
// would resolve it (a backslash or a tab can make "/..." another site).
function localPath(next) {
  if (!next || !next.startsWith("/") || /[\\\x00-\x20]/.test(next)) return null;
  try {
    const u = new URL(next, location.origin);
    return u.origin === location.origin ? u.pathname + u.search + u.hash : null;
  } catch {
    return null;
  }
}

// Signed in: the session the server gave (sign-in, or the cookie's).
async function enter(s) {
  session = s;
  Words.show($("signin-error"), null);
  $("user").textContent = s.user + (s.admin ? " (admin)" : "");
  $("nav").hidden = false;
  // Back where a sign-in was asked for (the call page sends people here).
  const next = localPath(new URLSearchParams(location.search).get("next"));
  if (next) { location.href = next; return; }
  show("recordings-view");
  await loadRecordings();
  connectEvents();
}

async function signIn(body) {
  await enter(await api("POST", "/v1/session", body));
}

async function signOut() {
  try { await api("DELETE", "/v1/session"); } catch { /* signed out either way */ }
  signedOut(null);
  $("signin-note").textContent = "You signed out.";
}

// The sign-in form: a password, the identity provider if there is one,
// an API key; and why the last sign-in failed, if the provider said.
async function showSignIn() {
  show("signin-view");
  const m = await fetch("/v1/session/methods").then((r) => r.json()).catch(() => ({}));
  if (m.oidc) {
    const next = localPath(new URLSearchParams(location.search).get("next")) || "/";
    $("oidc-signin").href = "/v1/session/oidc?next=" + encodeURIComponent(next);
    $("oidc-signin").textContent = "Sign in with " + m.oidc.name;
    $("oidc-row").hidden = false;
  }
  const q = new URLSearchParams(location.search);
  if (q.get("signin_error")) {
    // Only the code is taken from the address: its words are the page's own.
    Words.show($("signin-error"), Words.fail(0, { error: { code: q.get("signin_error") === "oidc_failed" ? "oidc_failed" : null, message: "" } }));
    q.delete("signin_error"); q.delete("why");
    history.replaceState(null, "", location.pathname + (q.toString() ? "?" + q : ""));
  }
}

function fmtDuration(s) {
  if (s == null) return "";
  const m = Math.floor(s / 60), r = Math.round(s % 60);
  return m + ":" + String(r).padStart(2, "0");
}

function fmtSize(b) {
  if (b == null) return "";
  return b > 1e6 ? (b / 1e6).toFixed(1) + " MB" : (b / 1e3).toFixed(0) + " kB";
}

// Shows `rec` in the list: a new one on top (or at the end, for an older
// page of the list); while a search runs, only the rows it found change.
function render(rec, atEnd) {
  let li = rows.get(rec.id);
  if (!li) {
    if (search && !atEnd) return;
    li = document.createElement("li");
    li.dataset.id = rec.id;
    rows.set(rec.id, li);
    if (atEnd) $("rec-list").append(li); else $("rec-list").prepend(li);
  }
  li.dataset.status = rec.status;
  li.dataset.kind = rec.source.kind;
  const done = rec.status === "completed";
  const when = new Date(rec.created_at).toLocaleString();
  li.innerHTML = "";
  const thumb = done ? document.createElement("img") : document.createElement("div");
  if (done) { thumb.src = "/v1/recordings/" + rec.id + "/thumbnail"; thumb.alt = ""; thumb.className = "thumb"; }
  else thumb.className = "thumb-empty";
  const meta = document.createElement("div");
  meta.className = "meta";
  const title = document.createElement("a");
  title.className = "title";
  title.href = "/r/" + rec.id;
  title.textContent = rec.title || "Untitled recording";
  const sub = document.createElement("div");
  sub.className = "sub";
  const st = document.createElement("span");
  st.className = "status " + rec.status;
  st.textContent = Words.status(rec.status);
  const parts = [Words.kind(rec.source.kind), rec.format && rec.format.toUpperCase(), when, fmtDuration(rec.duration_s), fmtSize(rec.size_bytes)].filter(Boolean);
  sub.append(st, " " + parts.join(" · "));
  const planned = rec.stats && rec.stats.frames_planned;
  if (planned && ["recording", "paused"].includes(rec.status)) {
    const p = document.createElement("div");
    p.className = "progress";
    const bar = document.createElement("progress");
    const done = Math.min(rec.stats.frames_written || 0, planned);
    bar.max = planned; bar.value = done;
    const spent = (Date.now() - Date.parse(rec.started_at || rec.created_at)) / 1000;
    const text = document.createElement("span");
    text.textContent = Words.progress(done, planned, spent, done > 0 ? spent * (planned - done) / done : null);
    p.append(bar, " ", text);
    sub.append(p);
  }
  if (rec.error) {
    const e = document.createElement("div");
    e.className = "error";
    Words.show(e, Words.fail(0, { error: typeof rec.error === "string" ? { code: null, message: rec.error } : rec.error }));
    sub.append(e);
  }
  meta.append(title, sub);
  const actions = document.createElement("div");
  actions.className = "actions";
  if (done) {
    const play = document.createElement("button");
    play.textContent = "Play";
    play.className = "play";
    play.onclick = () => openPlayer(rec);
    const dl = document.createElement("a");
    dl.textContent = "Download";
    dl.className = "download";
    dl.href = "/v1/recordings/" + rec.id + "/media?download=1";
    actions.append(play, dl);
    if (rec.tracks && rec.tracks.length) actions.append(trackList(rec));
  }
  // A recording that has not ended can be stopped from here: a browser
  // that stopped sending (a guest's tab closed) keeps what arrived.
  if (["recording", "paused"].includes(rec.status) && (rec.outputs || []).some((o) => o.kind === "hls")) {
    // Its watch page plays what is being recorded now.
    const watch = document.createElement("a");
    watch.textContent = "Watch live";
    watch.className = "watch-live button-like";
    watch.href = "/r/" + rec.id;
    actions.append(watch);
  }
  if (["recording", "paused"].includes(rec.status)) {
    const stop = document.createElement("button");
    stop.textContent = "Stop";
    stop.className = "stop-rec";
    stop.onclick = async () => {
      try { await api("POST", "/v1/recordings/" + rec.id + "/stop"); } catch (e) { alert(e.message); }
    };
    actions.append(stop);
  }
  if (["completed", "failed", "cancelled", "pending"].includes(rec.status)) {
    const del = document.createElement("button");
    del.textContent = "Delete";
    del.className = "danger delete";
    del.onclick = async () => {
      if (!confirm("Delete this recording?")) return;
      try { await api("DELETE", "/v1/recordings/" + rec.id); } catch (e) { alert(e.message); }
    };
    actions.append(del);
  }
  li.append(thumb, meta, actions);
  $("empty").hidden = rows.size > 0;
}

// Each person's tracks of a call, playable one by one.
function trackList(rec) {
  const box = document.createElement("details");
  box.className = "tracks";
  const summary = document.createElement("summary");
  summary.textContent = "Tracks (" + rec.tracks.length + ")";
  box.append(summary);
  const list = document.createElement("ul");
  for (const t of rec.tracks) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.className = "link play-track";
    b.dataset.track = t.id;
    const who = (t.participant || "someone") + " · " + (t.kind === "audio" ? "sound" : "picture");
    b.textContent = who + (t.duration_s ? " (" + fmtDuration(t.duration_s) + ")" : "");
    b.onclick = () => openPlayer(rec, { src: "/v1/recordings/" + rec.id + "/tracks/" + t.id + "/media", title: who });
    li.append(b);
    list.append(li);
  }
  box.append(list);
  return box;
}

function remove(id) {
  const li = rows.get(id);
  if (li) { li.remove(); rows.delete(id); }
  $("empty").hidden = rows.size > 0;
}

// The list, a page at a time (newest first), of everything or of what
// the search finds.
let search = "";
let cursor = null;
let listing = 0; // the newest list request: answers to older ones are dropped
async function loadRecordings(more) {
  const mine = ++listing;
  const q = searchQuery(search);
  if (more && cursor) q.set("cursor", cursor);
  const data = await api("GET", "/v1/recordings?" + q);
  if (mine !== listing) return;
  if (!more) { rows.clear(); $("rec-list").replaceChildren(); }
  for (const rec of data.recordings) render(rec, true);
  cursor = data.next_cursor;
  $("more").hidden = !cursor;
  $("empty").hidden = rows.size > 0;
  $("empty").textContent = search ? "No recording matches “" + search + "”." :
    "No recordings yet. Make one in the Record, Live camera, Web page or Calls tab.";
}

// The search box's words: `key:value` filters by the recordings' own
// metadata (`metadata.key=value`), the rest is searched for.
function searchQuery(text) {
  const q = new URLSearchParams({ limit: "50" });
  const words = [];
  for (const w of text.split(/\s+/).filter(Boolean)) {
    const m = /^([A-Za-z0-9_-]{1,64}):(.+)$/.exec(w);
    if (m) q.set("metadata." + m[1], m[2]);
    else words.push(w);
  }
  if (words.length) q.set("q", words.join(" "));
  return q;
}

let searchTimer = null;
$("search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    search = $("search").value.trim();
    loadRecordings(false).catch((e) => Words.show($("list-error"), e));
  }, 300);
});
$("more").onclick = () => loadRecordings(true).catch((e) => Words.show($("list-error"), e));

// A web recording's progress moves between events: its row is asked for
// again while it renders.
setInterval(() => {
  if (!session) return;
  for (const li of $("rec-list").querySelectorAll('li[data-kind="web"][data-status="recording"]')) {
    api("GET", "/v1/recordings/" + li.dataset.id).then((r) => render(r), () => {});
  }
}, 2000);

function connectEvents() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  events = new WebSocket(proto + "//" + location.host + "/v1/events");
  events.onopen = () => { $("live").textContent = "live"; $("live").classList.add("on"); };
  events.onclose = () => {
    $("live").textContent = "reconnecting…"; $("live").classList.remove("on");
    // Closed for good when the session ended: api() signs out.
    if (session) api("GET", "/v1/session").then(() => setTimeout(connectEvents, 2000), () => {});
  };
  events.onmessage = (m) => {
    const ev = JSON.parse(m.data);
    if (!ev.recording) return;
    if (ev.type === "recording.deleted") remove(ev.recording.id);
    else render(ev.recording);
    // The camera's recording stopped elsewhere (the list, the API, a limit).
    if (timer && ev.recording.id === recId && !["pending", "recording", "paused"].includes(ev.recording.status)) cameraStopped();
  };
}

// Camera: frames at 5 fps over a WebSocket, each preceded by its timestamp.
const FPS = 5;
let stream = null, socket = null, timer = null, clock = null, startedAt = 0, recId = null;

async function startPreview() {
  if (stream) return;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720 }, audio: false });
    $("camera-preview").srcObject = stream;
    $("camera-status").textContent = "Camera ready.";
  } catch (e) {
    $("camera-status").textContent = "No camera: " + e.message;
  }
}

// Leaving the tab turns the camera off (unless it records).
function stopPreview() {
  if (!stream) return;
  for (const t of stream.getTracks()) t.stop();
  stream = null;
  $("camera-preview").srcObject = null;
  $("camera-status").textContent = "";
}

async function startRecording() {
  await startPreview();
  if (!stream) return;
  const rec = await api("POST", "/v1/recordings", { source: { kind: "frames" }, format: "mp4", preset: "medium", title: "Camera " + new Date().toLocaleString() });
  recId = rec.id;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(proto + "//" + location.host + "/v1/recordings/" + rec.id + "/frames");
  socket.binaryType = "arraybuffer";
  socket.onmessage = (m) => {
    const p = JSON.parse(m.data);
    if (p.frames_received === undefined) return;
    $("camera-status").textContent = "Recording: " + p.frames_received + " pictures sent" + (p.last_error ? ". Some were refused: " + p.last_error : ".");
  };
  await new Promise((ok, fail) => { socket.onopen = ok; socket.onerror = () => fail(new Error("frames socket failed")); });
  const video = $("camera-preview");
  const canvas = document.createElement("canvas");
  startedAt = performance.now();
  timer = setInterval(() => {
    if (!video.videoWidth || socket.readyState !== 1) return;
    canvas.width = video.videoWidth; canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    const pts = performance.now() - startedAt;
    canvas.toBlob(async (b) => {
      if (!b || socket.readyState !== 1) return;
      socket.send(JSON.stringify({ pts_ms: pts }));
      socket.send(await b.arrayBuffer());
    }, "image/jpeg", 0.85);
  }, 1000 / FPS);
  clock = setInterval(() => {
    const s = Math.floor((performance.now() - startedAt) / 1000);
    $("rec-timer").textContent = String(Math.floor(s / 60)).padStart(2, "0") + ":" + String(s % 60).padStart(2, "0");
  }, 250);
  $("rec-indicator").hidden = false;
  $("record").textContent = "Stop";
  $("record").classList.add("stop");
}

// The recording ended without this tab's Stop: the tab stops sending.
function cameraStopped() {
  clearInterval(timer); clearInterval(clock);
  timer = null;
  if (socket) socket.close();
  $("rec-indicator").hidden = true;
  $("record").textContent = "Record";
  $("record").classList.remove("stop");
  $("camera-status").textContent = "The recording was stopped elsewhere (the list, or a limit); it is saved.";
}

async function stopRecording() {
  clearInterval(timer); clearInterval(clock);
  timer = null;
  // Let the last frames leave before stopping.
  await new Promise((r) => setTimeout(r, 400));
  try { await api("POST", "/v1/recordings/" + recId + "/stop"); } catch (e) { Words.show($("camera-status"), e); }
  if (socket) socket.close();
  $("rec-indicator").hidden = true;
  $("record").textContent = "Record";
  $("record").classList.remove("stop");
  $("camera-status").textContent = "Saved; it will be ready in a moment.";
  show("recordings-view");
}

$("signin-form").onsubmit = async (e) => {
  e.preventDefault();
  $("signin-note").textContent = "";
  try { await signIn({ user: $("user-name").value.trim(), password: $("password").value }); }
  catch (err) { Words.show($("signin-error"), err); }
  $("password").value = "";
};
$("key-form").onsubmit = async (e) => {
  e.preventDefault();
  $("signin-note").textContent = "";
  try { await signIn({ api_key: $("token").value.trim() }); } catch (err) { Words.show($("signin-error"), err); }
  $("token").value = "";
};
$("signout").onclick = signOut;
$("tab-recordings").onclick = () => show("recordings-view");
$("tab-camera").onclick = () => show("camera-view");
$("tab-record").onclick = () => show("record-view");
$("tab-web").onclick = () => show("web-view");
$("to-record").onclick = (e) => { e.preventDefault(); show("record-view"); };
$("web-form").onsubmit = async (e) => {
  e.preventDefault();
  $("web-error").textContent = "";
  const source = { kind: "web", url: $("web-url").value.trim(), mode: $("web-mode").value };
  const what = document.querySelector("input[name=web-what]:checked").value;
  try {
    if (what === "auto") source.auto = { duration_s: Number($("web-auto").value) };
    if (what === "template") source.template = $("web-template").value;
    if (what === "script") {
      try { source.script = JSON.parse($("web-script").value); }
      catch (err) { throw new Error("the script is not valid JSON: " + err.message); }
    }
    $("web-submit").disabled = true;
    const rec = await api("POST", "/v1/recordings", {
      source, preset: $("web-preset").value, format: $("web-format").value, title: source.url,
    });
    render(rec);
    show("recordings-view");
  } catch (err) {
    Words.show($("web-error"), err);
  } finally {
    $("web-submit").disabled = false;
  }
};
// The player opens over the page where the user looks (a modal dialog:
// Escape or Close shuts it), not below the whole list.
function openPlayer(rec, track) {
  $("player-title").textContent = (rec.title || "Recording") + (track ? " · " + track.title : "");
  $("player-video").src = track ? track.src : "/v1/recordings/" + rec.id + "/media";
  $("player").showModal();
  $("player-video").play().catch(() => {});
}
$("player-close").onclick = () => $("player").close();
$("player").addEventListener("close", () => { $("player-video").pause(); $("player-video").removeAttribute("src"); });
$("record").onclick = async () => {
  $("record").disabled = true;
  try { if (timer) await stopRecording(); else await startRecording(); }
  catch (e) { Words.show($("camera-status"), e); }
  $("record").disabled = false;
};

async function loadRooms() {
  try {
    const d = await api("GET", "/v1/rooms");
    $("room-list").replaceChildren(...d.rooms.map(roomRow));
  } catch (e) {
    Words.show($("calls-error"), e);
  }
}

function roomRow(r) {
  const li = document.createElement("li");
  const open = document.createElement("a");
  open.href = "/call/" + r.id;
  open.textContent = r.name;
  const sub = document.createElement("span");
  sub.className = "sub";
  sub.textContent = ` host ${r.host}` + (r.closed_at ? " · closed" : "");
  li.append(open, sub);
  if (!r.closed_at && session && r.host === session.user) {
    const inv = document.createElement("button");
    inv.className = "link";
    inv.textContent = "Invite a guest";
    const out = document.createElement("input");
    out.readOnly = true;
    out.hidden = true;
    inv.onclick = async () => {
      const name = prompt("The guest's name in the call");
      if (!name) return;
      try {
        const i = await api("POST", `/v1/rooms/${r.id}/invites`, { name, expires_in_s: 86400 });
        out.value = i.join_url;
        out.hidden = false;
        out.select();
      } catch (e) {
        Words.show($("calls-error"), e);
      }
    };
    li.append(" ", inv, out);
  }
  return li;
}

$("tab-calls").onclick = () => show("calls-view");
$("room-form").onsubmit = async (e) => {
  e.preventDefault();
  $("calls-error").textContent = "";
  try {
    const r = await api("POST", "/v1/rooms", { name: $("room-name").value });
    $("room-name").value = "";
    location.href = "/call/" + r.id;
  } catch (err) {
    Words.show($("calls-error"), err);
  }
};

// Once every script of the page has run (record.js is the Record tab):
// the key an older page kept in this browser is no longer used, and a
// session that ended (expired, its key revoked) is said; no session is not.
window.addEventListener("DOMContentLoaded", () => {
  localStorage.removeItem("tapedeck.token");
  api("GET", "/v1/session").then(enter, (e) => {
    showSignIn();
    if (e.code === "session_expired") Words.show($("signin-error"), e);
  });
});
