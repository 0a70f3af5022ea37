// The watch page of one recording, /r/ID (signed in): its title, player,
// each person's tracks, download, share, rename, delete, and while a web
// recording renders, its progress; while one with an HLS output records,
// its live picture (hls.js, served by the server, where the browser does
// not play HLS itself). Live from the events socket.
"use strict";

const $ = (id) => document.getElementById(id);
const recId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
let session = null;
let rec = null;

async function api(method, path, body) {
  const headers = body ? { "Content-Type": "application/json" } : {};
  if (method !== "GET" && session) headers["X-CSRF-Token"] = session.csrf;
  const r = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* a proxy's page */ }
  if (!r.ok) throw Words.fail(r.status, data);
  return data;
}

function fmtClock(s) {
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

function fmtSize(b) {
  return b > 1e6 ? (b / 1e6).toFixed(1) + " MB" : (b / 1e3).toFixed(0) + " kB";
}

function render(r) {
  const first = !rec;
  rec = r;
  document.title = (r.title || "Recording") + " · tapedeck";
  $("watch-title").textContent = r.title || "Untitled recording";
  const parts = [Words.status(r.status), Words.kind(r.source.kind), new Date(r.created_at).toLocaleString()];
  if (r.duration_s) parts.push(fmtClock(r.duration_s));
  if (r.size_bytes) parts.push(fmtSize(r.size_bytes));
  $("watch-sub").textContent = parts.join(" · ");
  $("watch").dataset.status = r.status;
  if (r.error) Words.show($("watch-error"), Words.fail(0, { error: r.error }));
  else Words.show($("watch-error"), null);
  progress(r);
  const done = r.status === "completed";
  $("watch-download").hidden = !done;
  $("watch-share").hidden = !done;
  if (done) {
    $("watch-download").href = `/v1/recordings/${r.id}/media?download=1`;
    if (first || $("watch-video").hidden || live) play(`/v1/recordings/${r.id}/media`, null);
  } else if (!live && ["recording", "paused"].includes(r.status) && (r.outputs || []).some((o) => o.kind === "hls")) {
    playLive(`/v1/recordings/${r.id}/hls/index.m3u8`);
  }
  $("watch-live").hidden = !live;
  tracks(r);
}

// A web recording that renders shows how far it is: frames done of those
// planned, time spent and time left.
function progress(r) {
  const st = r.stats || {};
  const live = ["recording", "paused", "processing"].includes(r.status);
  const planned = st.frames_planned || 0;
  $("watch-progress").hidden = !(live && planned > 0);
  if ($("watch-progress").hidden) return;
  const done = Math.min(st.frames_written || 0, planned);
  const elapsed = (Date.now() - Date.parse(r.started_at || r.created_at)) / 1000;
  const left = done > 0 ? elapsed * (planned - done) / done : null;
  $("progress-bar").value = done / planned;
  $("progress-text").textContent = Words.progress(done, planned, elapsed, left);
}

// The HLS player while the recording records (null otherwise).
let live = null;

function stopLive() {
  if (live && live.stop) live.stop();
  live = null;
}

// Plays the live playlist (live-player.js).
async function playLive(src) {
  const v = $("watch-video");
  v.hidden = false;
  const pending = { stop: null };
  live = pending;
  const handle = await TapedeckLive.play(v, src);
  if (live !== pending) {
    // Stopped while hls.js loaded.
    if (handle) handle.stop();
    return;
  }
  live = handle;
  if (handle) $("watch-live").hidden = false;
}

function play(src, title) {
  stopLive();
  const v = $("watch-video");
  v.hidden = false;
  v.src = src;
  if (rec && rec.status === "completed" && !title) v.poster = `/v1/recordings/${rec.id}/thumbnail`;
  $("watch-track-title").hidden = !title;
  $("watch-track-title").textContent = title ? "Playing: " + title : "";
}

function tracks(r) {
  const list = r.tracks || [];
  $("watch-tracks").hidden = !(r.status === "completed" && list.length);
  $("track-list").replaceChildren(...list.map((t) => {
    const li = document.createElement("li");
    const who = (t.participant || "someone") + " · " + (t.kind === "audio" ? "sound" : "picture");
    const b = document.createElement("button");
    b.className = "link play-track";
    b.textContent = who + (t.duration_s ? " (" + fmtClock(t.duration_s) + ")" : "");
    b.onclick = () => play(`/v1/recordings/${r.id}/tracks/${t.id}/media`, who);
    li.append(b);
    return li;
  }));
  if (list.length && r.status === "completed") {
    const all = document.createElement("li");
    const b = document.createElement("button");
    b.className = "link";
    b.textContent = "The whole call";
    b.onclick = () => play(`/v1/recordings/${r.id}/media`, null);
    all.append(b);
    $("track-list").prepend(all);
  }
}

function listen() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/v1/events`);
  ws.onmessage = (m) => {
    const ev = JSON.parse(m.data);
    if (!ev.recording || ev.recording.id !== recId) return;
    if (ev.type === "recording.deleted") { location.href = "/"; return; }
    render(ev.recording);
  };
  ws.onclose = () => setTimeout(listen, 2000);
}

// Progress moves between events: asked for while something renders.
setInterval(async () => {
  if (!rec || !["recording", "paused", "processing"].includes(rec.status)) return;
  try { render(await api("GET", "/v1/recordings/" + recId)); } catch { /* next time */ }
}, 2000);

$("watch-rename").onclick = () => {
  $("rename-input").value = rec ? rec.title || "" : "";
  $("rename-form").hidden = false;
  $("rename-input").focus();
};
$("rename-cancel").onclick = () => { $("rename-form").hidden = true; };
$("rename-form").onsubmit = async (e) => {
  e.preventDefault();
  try {
    render(await api("PATCH", "/v1/recordings/" + recId, { title: $("rename-input").value.trim() }));
    $("rename-form").hidden = true;
  } catch (err) {
    Words.show($("watch-error"), err);
  }
};
$("watch-delete").onclick = async () => {
  if (!confirm("Delete this recording? This cannot be undone.")) return;
  try {
    await api("DELETE", "/v1/recordings/" + recId);
    location.href = "/";
  } catch (err) {
    Words.show($("watch-error"), err);
  }
};
$("watch-share").onclick = async () => {
  try {
    const s = await api("POST", `/v1/recordings/${recId}/share`, {});
    $("share-url").value = s.page_url;
    $("share-until").textContent = new Date(s.expires_at).toLocaleString();
    $("share-box").hidden = false;
    $("share-url").select();
  } catch (err) {
    Words.show($("watch-error"), err);
  }
};
$("share-copy").onclick = async () => {
  try { await navigator.clipboard.writeText($("share-url").value); $("share-copy").textContent = "Copied"; }
  catch { $("share-url").select(); document.execCommand("copy"); $("share-copy").textContent = "Copied"; }
};

(async () => {
  try {
    session = await api("GET", "/v1/session");
  } catch {
    location.href = "/?next=" + encodeURIComponent(location.pathname);
    return;
  }
  try {
    render(await api("GET", "/v1/recordings/" + recId));
    $("watch").hidden = false;
    listen();
  } catch (err) {
    Words.show($("watch-error"), err);
  }
})();
