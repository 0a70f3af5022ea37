// tapedeck call page: /call/ROOM[?token=JOIN_TOKEN]. Joins the room's call
// over its socket (/v1/rooms/ROOM/call), sends the camera and microphone,
// shows everyone else, and for the host records the call. Protocol:
// docs/rooms.md.
"use strict";

const $ = (id) => document.getElementById(id);
const roomId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const params = new URLSearchParams(location.search);
const joinToken = params.get("token");
// A signed-in user's session (its cookie goes with every request; changes
// carry its CSRF token). A guest has the join token instead.
let session = null;

let local = null; // MediaStream of the camera and microphone
let localReady = null; // settles when the camera and microphone are asked for
let pc = null;
let ws = null;
let me = null; // {peer, name, host}
let roomHost = null; // the host's user name
let endedByMe = false; // this page pressed "End for everyone"
let queue = Promise.resolve(); // signalling messages, one at a time
const tiles = new Map(); // peer -> {el, video, name}
const streams = new Map(); // peer (or `peer-screen`) -> MediaStream received
let lastList = []; // the participants as the server last said
const recordings = new Map(); // id -> recording
let live = null; // the room's recording that has not ended
let rec = { elapsed: 0, since: null }; // REC timer: seconds before `since`, running from `since`

function status(text) {
  $("call-status").textContent = text;
}

async function api(method, path, body) {
  const r = await fetch(path, {
    method,
    headers: { ...auth(method), ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* a proxy's HTML page */ }
  if (!r.ok) throw Words.fail(r.status, data);
  return data;
}

// Why the call socket would not open: the same route as a plain request
// answers with the reason (a closed or unknown room, an expired invite),
// which a WebSocket that failed to open does not tell.
async function whyNotJoined() {
  try {
    await api("GET", `/v1/rooms/${roomId}/call`);
  } catch (e) {
    if (e.code !== "not_websocket") return e;
  }
  return Words.fail(0, { error: { code: null, message: "the connection to the server closed" } });
}

// Why the call's socket closed without the server's `ended`: when the
// server that held the call stopped (another server answers the call's
// route with `node_unreachable`), it is `node_lost`, as that server would
// have said, and joining again starts the call on the server taking it
// over; else this page's own connection dropped.
async function whyLost() {
  for (let i = 0; i < 3; i++) {
    const e = await whyNotJoined();
    if (e.code === "node_unreachable") return "node_lost";
    // The route answered as it does when the call's server is there.
    if (e.code === null) return "disconnected";
    await new Promise((r) => setTimeout(r, 1000));
  }
  return "disconnected";
}

function guestName(t) {
  // A join token is jt_{room}.{exp}.{name, base64url}.{signature}.
  try {
    const b64 = t.split(".")[2].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return new TextDecoder().decode(bytes);
  } catch {
    return null;
  }
}

// What authenticates a request: a guest's join token, or the session's
// CSRF token beside its cookie for a change.
function auth(method) {
  if (joinToken) return { Authorization: "Bearer " + joinToken };
  return session && method !== "GET" ? { "X-CSRF-Token": session.csrf } : {};
}

async function lobby() {
  if (joinToken) {
    const name = guestName(joinToken);
    if (name) {
      $("name").value = name;
      $("name").disabled = true;
      $("guest-note").hidden = false;
    }
  } else {
    try {
      session = await api("GET", "/v1/session");
      $("name").value = session.user;
      const room = await api("GET", "/v1/rooms/" + roomId).catch(() => null);
      if (room) $("room-name").textContent = room.name;
    } catch {
      // Neither invited nor signed in: sign in first, then back here.
      $("signin-link").href = "/?next=" + encodeURIComponent(location.pathname);
      $("signin-row").hidden = false;
      $("join").disabled = true;
    }
  }
  await localReady;
}

// The camera and microphone chosen in the lobby (the first of each, until
// the person picks another): the preview, and the microphone's level.
async function openDevices() {
  const cam = $("cam-select").value, mic = $("mic-select").value;
  if (local) for (const t of local.getTracks()) t.stop();
  try {
    local = await navigator.mediaDevices.getUserMedia({
      audio: mic ? { deviceId: { exact: mic } } : true,
      video: { width: 640, height: 360, frameRate: 30, ...(cam ? { deviceId: { exact: cam } } : {}) },
    });
    $("preview").srcObject = local;
    levels.watch("me", local);
    await listDevices();
  } catch (e) {
    local = null;
    $("lobby-error").textContent = "No camera or microphone (" + e.name + "): you can still join to watch and listen.";
  }
}

// The pickers list what the browser has (names show once it was allowed).
async function listDevices() {
  const all = await navigator.mediaDevices.enumerateDevices();
  for (const [kind, id] of [["videoinput", "cam-select"], ["audioinput", "mic-select"]]) {
    const current = local && local.getTracks().find((t) => (kind === "videoinput" ? "video" : "audio") === t.kind);
    const using = current ? current.getSettings().deviceId : "";
    $(id).replaceChildren(...all.filter((d) => d.kind === kind).map((d, i) => {
      const o = document.createElement("option");
      o.value = d.deviceId;
      o.textContent = d.label || (kind === "videoinput" ? "Camera " : "Microphone ") + (i + 1);
      o.selected = d.deviceId === using;
      return o;
    }));
  }
}

function waitForIce(pc) {
  return new Promise((done) => {
    if (pc.iceGatheringState === "complete") return done();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") done();
    });
    setTimeout(done, 2000);
  });
}

// The STUN and TURN servers to reach the server through (a network that
// blocks UDP); none when the server names none or cannot say.
async function iceServers() {
  const query = joinToken ? "?token=" + encodeURIComponent(joinToken) : "";
  try {
    const r = await fetch(`/v1/rooms/${roomId}/ice-servers${query}`, { credentials: "same-origin" });
    return r.ok ? (await r.json()).ice_servers : [];
  } catch {
    return [];
  }
}

async function join(ev) {
  ev.preventDefault();
  $("lobby-error").textContent = "";
  $("join").disabled = true;
  // Joining before the devices answered would send nothing.
  await localReady;
  pc = new RTCPeerConnection({ iceServers: await iceServers() });
  for (const kind of ["audio", "video"]) {
    const track = local && local.getTracks().find((t) => t.kind === kind);
    pc.addTransceiver(track || kind, { direction: "sendonly", streams: local ? [local] : [] });
  }
  screen.keep(pc);
  pc.ontrack = (e) => {
    const stream = e.streams[0];
    if (!stream) return;
    streams.set(stream.id, stream);
    if (stream.id.endsWith("-screen")) return screen.render(lastList);
    if (e.track.kind === "audio") levels.watch(stream.id, new MediaStream([e.track]));
    const t = tiles.get(stream.id);
    if (t) attach(t, stream);
  };
  pc.onconnectionstatechange = () => status(Words.connection(pc.connectionState));
  await pc.setLocalDescription(await pc.createOffer());
  await waitForIce(pc);
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  // A guest's join token in the URL; a user's session cookie goes by itself.
  const query = joinToken ? "?token=" + encodeURIComponent(joinToken) : "";
  ws = new WebSocket(`${proto}//${location.host}/v1/rooms/${roomId}/call${query}`);
  ws.onopen = () => ws.send(JSON.stringify({ type: "join", offer: pc.localDescription.sdp, name: $("name").value, screen: screen.mids() }));
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    queue = queue.then(() => handle(m)).catch((err) => status("Error: " + err.message));
  };
  ws.onclose = async () => {
    // The messages before the close first (an `error` says why itself).
    await queue.catch(() => {});
    if (me) ended(await whyLost());
    else {
      $("join").disabled = false;
      if (!$("lobby-error").textContent) Words.show($("lobby-error"), await whyNotJoined());
    }
  };
}

async function handle(m) {
  switch (m.type) {
    case "joined":
      me = m.you;
      roomHost = m.room.host;
      $("room-name").textContent = m.room.name;
      await pc.setRemoteDescription({ type: "answer", sdp: m.answer });
      $("lobby").hidden = true;
      $("in-call").hidden = false;
      for (const el of document.querySelectorAll(".host-only")) el.hidden = !me.host;
      // Anyone in the call may record it in their browser: a user uploads
      // as themselves, a guest (join token) into this room, as the host's.
      $("record-here").hidden = !(joinToken || session);
      if (session) loadRecordings();
      break;
    case "offer": {
      await pc.setRemoteDescription({ type: "offer", sdp: m.sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      ws.send(JSON.stringify({ type: "answer", sdp: pc.localDescription.sdp }));
      break;
    }
    case "participants":
      lastList = m.participants;
      renderTiles(m.participants);
      screen.render(m.participants);
      break;
    case "recording":
      onRecording(m.event, m.recording, m.recorded_s);
      break;
    case "error":
      Words.show(me ? $("call-status") : $("lobby-error"), Words.fail(0, { error: m }));
      break;
    case "ended":
      ended(m.reason);
      break;
  }
}

function tileFor(p) {
  let t = tiles.get(p.peer);
  if (t) return t;
  const el = document.createElement("div");
  el.className = "tile";
  el.dataset.peer = p.peer;
  const video = document.createElement("video");
  video.autoplay = true;
  video.playsInline = true;
  const name = document.createElement("span");
  name.className = "name";
  const flags = document.createElement("span");
  flags.className = "flags";
  el.append(video, name, flags);
  t = { el, video, name, flags, person: p.name };
  tiles.set(p.peer, t);
  $("tiles").append(el);
  if (p.peer === me.peer) {
    video.muted = true;
    if (local) video.srcObject = local;
  } else if (streams.has(p.peer)) {
    attach(t, streams.get(p.peer));
  }
  return t;
}

function attach(t, stream) {
  // A track can come in a later offer than its stream's first: the element
  // gets a fresh stream of every track, or it may not show the new one.
  const ids = stream.getTracks().map((x) => x.id).sort().join();
  if (t.tracks !== ids) {
    t.tracks = ids;
    t.video.srcObject = new MediaStream(stream.getTracks());
    t.video.play().catch(() => {});
  }
}

function renderTiles(list) {
  const here = new Set(list.map((p) => p.peer));
  for (const [peer, t] of tiles) {
    if (!here.has(peer)) {
      t.el.remove();
      tiles.delete(peer);
      streams.delete(peer);
    }
  }
  for (const p of list) {
    const t = tileFor(p);
    t.person = p.name;
    t.mic = p.audio;
    t.name.textContent = p.name + (p.peer === me.peer ? " (you)" : "");
    const off = [];
    if (!p.audio) off.push("mic off");
    if (!p.video) off.push("camera off");
    t.flags.textContent = off.join(" · ");
    t.el.classList.toggle("camera-off", !p.video);
  }
  $("tiles").dataset.count = String(list.length);
  // The people in the call, with their microphone and who is speaking.
  $("people-count").textContent = String(list.length);
  $("people-list").replaceChildren(...list.map((p) => {
    const li = document.createElement("li");
    li.dataset.peer = p.peer;
    const dot = document.createElement("span");
    dot.className = "speaking-dot";
    dot.setAttribute("aria-hidden", "true");
    const name = document.createElement("span");
    name.textContent = p.name + (p.peer === me.peer ? " (you)" : "") + (p.user && p.user === roomHost ? " · host" : "");
    const state = document.createElement("span");
    state.className = "sub";
    state.textContent = p.audio ? "" : " · muted";
    li.append(dot, name, state);
    return li;
  }));
}

function fmt(s) {
  s = Math.max(0, Math.floor(s));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

function recElapsed() {
  return rec.elapsed + (rec.since ? (Date.now() - rec.since) / 1000 : 0);
}

setInterval(() => {
  if (!$("rec").hidden) $("rec-time").textContent = fmt(recElapsed());
}, 250);

function onRecording(event, r, recordedS) {
  recordings.set(r.id, r);
  // The room's REC state and the host's buttons are the room recording's
  // only: an upload filed under the room (a guest's "Record in this
  // browser") belongs to whoever records it, shown on their page alone.
  if (!r.source || r.source.kind !== "room") {
    renderRecordings();
    return;
  }
  const running = r.status === "recording";
  const active = ["pending", "recording", "paused"].includes(r.status);
  if (active) {
    if (!live || live.id !== r.id) {
      // Joined during a recording: the timer starts at what the server
      // has recorded so far (pauses left out).
      rec = { elapsed: event === "recording.live" ? Math.max(0, recordedS || 0) : 0, since: null };
    }
    live = r;
    if (running && !rec.since) rec.since = Date.now();
    if (!running && rec.since) rec = { elapsed: recElapsed(), since: null };
  } else if (live && live.id === r.id) {
    live = null;
    rec = { elapsed: 0, since: null };
  }
  $("rec").hidden = !active;
  // Everyone is told, in words, while the room records.
  $("recorded-notice").hidden = !active;
  $("rec").classList.toggle("paused", r.status === "paused" && active);
  $("record").hidden = active;
  $("pause").hidden = !active;
  $("pause").textContent = r.status === "paused" ? "Resume" : "Pause";
  $("stop").hidden = !active;
  // From its start: a pending recording has no segments to play yet.
  preview(running || r.status === "paused" ? r : null);
  if (r.status === "processing") status("Saving the recording…");
  if (r.status === "completed") status("The recording is ready.");
  if (r.status === "failed") Words.show($("call-status"), Words.fail(0, { error: r.error || { code: "failed" } }));
  renderRecordings();
}

// The host sees the grid being recorded, from its live segments
// (live-player.js), while the room records with an hls output.
let previewing = null; // {id, handle}

async function preview(r) {
  const want = r && !joinToken && (r.outputs || []).some((o) => o.kind === "hls") ? r.id : null;
  if (previewing && previewing.id === want) return;
  if (previewing && previewing.handle) previewing.handle.stop();
  previewing = null;
  $("rec-preview").hidden = !want;
  if (!want) return;
  const mine = { id: want, handle: null };
  previewing = mine;
  const handle = await TapedeckLive.play($("rec-preview-video"), `/v1/recordings/${want}/hls/index.m3u8`);
  if (previewing !== mine) {
    if (handle) handle.stop();
    return;
  }
  mine.handle = handle;
  if (!handle) $("rec-preview").hidden = true;
}

function renderRecordings() {
  const list = [...recordings.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
  $("no-recordings").hidden = list.length > 0;
  $("recordings").replaceChildren(
    ...list.map((r) => {
      const li = document.createElement("li");
      li.dataset.id = r.id;
      li.dataset.status = r.status;
      const label = document.createElement("span");
      label.textContent = `${r.title || r.id} · ${Words.status(r.status)}` + (r.duration_s ? ` · ${fmt(r.duration_s)}` : "") +
        (r.tracks && r.tracks.length ? ` · ${r.tracks.length} tracks` : "");
      li.append(label);
      if (r.status === "completed" && session) {
        const a = document.createElement("a");
        a.href = `/v1/recordings/${r.id}/media?download=1`;
        a.textContent = "Download";
        li.append(" ", a);
      }
      return li;
    }),
  );
}

async function loadRecordings() {
  try {
    const d = await api("GET", `/v1/rooms/${roomId}/recordings`);
    for (const r of d.recordings) if (!recordings.has(r.id)) recordings.set(r.id, r);
    renderRecordings();
  } catch {
    // a guest: recordings arrive as events only
  }
}

async function control(what) {
  try {
    if (what === "record") {
      await api("POST", "/v1/recordings", {
        title: $("room-name").textContent,
        // Plays as the call: everyone in a grid with the sound mixed; each
        // person's tracks are kept beside it.
        source: { kind: "room", room: roomId, layout: "grid" },
        // Its live segments show the host what is recorded (below), and
        // stay with it as a stream any player plays.
        outputs: [{ kind: "hls", segment_s: 1 }],
      });
    } else if (live) {
      await api("POST", `/v1/recordings/${live.id}/${what}`);
    }
  } catch (e) {
    Words.show($("call-status"), e);
  }
}

function toggle(kind) {
  const btn = $(kind === "audio" ? "mic" : "cam");
  const on = btn.getAttribute("aria-pressed") !== "true";
  btn.setAttribute("aria-pressed", String(on));
  btn.textContent = (kind === "audio" ? "Mic " : "Camera ") + (on ? "on" : "off");
  if (local) for (const t of local.getTracks()) if (t.kind === kind) t.enabled = on;
  if (ws && ws.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify({
      type: "media",
      audio: $("mic").getAttribute("aria-pressed") === "true",
      video: $("cam").getAttribute("aria-pressed") === "true",
      screen: screen.sharing(),
    }));
  }
}

// "Record in this browser": every tile (this person's camera and the
// others' as this page shows them) composed into one picture, and every
// sound mixed, recorded and uploaded as it records (recorder.js). The
// upload is filed under the room.
let here = null; // {recorder, composed, clock}

function hereShow(st) {
  $("here-time").textContent = fmt(st.seconds);
  let text = "";
  if (st.upload === "uploading" && st.error) text = "· offline, kept here";
  else if (st.upload === "uploading" && !st.recording) text = "· uploading";
  else if (st.upload === "completed") text = "· uploaded";
  else if (st.upload === "failed") text = "· upload failed";
  $("here-status").textContent = text;
  $("here").dataset.upload = st.upload;
}

function recordHere() {
  const composed = TapedeckRecorder.compose({
    layout: "grid",
    width: 1280,
    height: 720,
    sources: () => [...tiles.values()].map((t) => ({
      video: t.video,
      stream: t.video.srcObject,
      // The person's name as everyone knows it: "(you)" is this page's only.
      name: t.person,
    })),
  });
  const recorder = TapedeckRecorder.record(composed.stream, {
    token: joinToken || undefined,
    auth: joinToken ? undefined : () => auth("POST"),
    title: $("room-name").textContent + " (recorded in " + $("name").value + "'s browser)",
    room: roomId,
    giveUpMs: Number(localStorage.getItem("tapedeck.giveUpMs")) || 60000,
    onChange: hereShow,
  });
  here = { recorder, composed, clock: setInterval(() => hereShow(recorder.state()), 250) };
  $("here").hidden = false;
  $("here").classList.add("rec");
  $("here").querySelector(".dot").hidden = false;
  $("here-label").textContent = "Recording in your browser";
  $("here-download").hidden = true;
  $("record-here").textContent = "Stop browser recording";
}

async function stopHere() {
  const h = here;
  here = null;
  clearInterval(h.clock);
  $("record-here").textContent = "Record in this browser";
  // No longer recording: the blinking dot goes, what is left is the upload.
  $("here").classList.remove("rec");
  $("here").querySelector(".dot").hidden = true;
  $("here-label").textContent = "Your browser recording";
  const done = h.recorder.stop();
  await h.recorder.ended;
  h.composed.stop();
  const st = await done;
  $("here").dataset.seconds = st.seconds.toFixed(3);
  hereShow(st);
  if (st.upload === "failed") {
    const file = await h.recorder.file();
    const a = $("here-download");
    a.href = URL.createObjectURL(file);
    a.download = "call-" + roomId + ".webm";
    a.hidden = false;
  }
  return st;
}

// Leaves the call page's call for `reason` (the server's `ended` reason, or
// "left", "disconnected"), saying why in plain words.
function ended(reason) {
  if (!me) return;
  if (here) stopHere();
  screen.clear();
  me = null;
  if (ws && ws.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify({ type: "leave" }));
    ws.close();
  }
  if (pc) pc.close();
  for (const t of tiles.values()) t.el.remove();
  tiles.clear();
  streams.clear();
  $("in-call").hidden = true;
  $("rec").hidden = true;
  $("ended").hidden = false;
  // The room closed: nobody joins again; the host who ended it reads so.
  const closed = reason === "room_closed";
  $("ended-title").textContent = closed && endedByMe ? "You ended the call for everyone." : Words.ended(reason);
  $("ended-reason").textContent = closed ? "The room is closed; its recordings are kept." :
    reason === "left" ? "" : "You can join again while the call goes on.";
  $("rejoin").hidden = closed;
  $("ended").dataset.reason = reason;
}

$("join-form").addEventListener("submit", join);
$("mic").onclick = () => toggle("audio");
$("cam").onclick = () => toggle("video");
$("share").onclick = () => screen.toggle();
$("record").onclick = () => control("record");
$("pause").onclick = () => control(live && live.status === "paused" ? "resume" : "pause");
$("stop").onclick = () => control("stop");
$("leave").onclick = () => ended("left");
$("record-here").onclick = () => (here ? stopHere() : recordHere());
$("cam-select").onchange = () => { localReady = openDevices(); };
$("mic-select").onchange = () => { localReady = openDevices(); };

// The host invites from inside the call: a link made for a name, copied.
$("invite").onclick = () => {
  $("invite-box").hidden = !$("invite-box").hidden;
  if (!$("invite-box").hidden) $("invite-name").focus();
};
$("invite-form").onsubmit = async (e) => {
  e.preventDefault();
  try {
    const i = await api("POST", `/v1/rooms/${roomId}/invites`, { name: $("invite-name").value.trim(), expires_in_s: 86400 });
    $("invite-url").value = i.join_url;
    $("invite-link").hidden = false;
    await copy($("invite-url"));
    setTimeout(() => { if ($("call-status").textContent === "Link copied.") status(""); }, 3000);
  } catch (err) {
    Words.show($("call-status"), err);
  }
};
$("invite-copy").onclick = () => copy($("invite-url"));

async function copy(input) {
  try { await navigator.clipboard.writeText(input.value); }
  catch { input.select(); document.execCommand("copy"); }
  status("Link copied.");
}

// The host ends the call for everyone: the room closes.
$("end-all").onclick = async () => {
  if (!confirm("End the call for everyone? The room closes; its recordings are kept.")) return;
  try {
    endedByMe = true;
    await api("DELETE", `/v1/rooms/${roomId}`);
  } catch (err) {
    Words.show($("call-status"), err);
  }
};
$("rejoin").onclick = () => location.reload();
localReady = openDevices();
lobby();
