// The home page's Record tab: the camera, the screen or both, recorded in
// this browser (recorder.js) after a preview, a microphone check and a
// countdown; paused and resumed; the camera in a bubble moved over the
// screen. Loaded after app.js, whose helpers ($, auth, Words) it uses.
"use strict";

let br = null; // {recorder, composed, inputs}

function fmtClock(s) {
  s = Math.max(0, Math.floor(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

function brShow(st) {
  $("br-timer").textContent = fmtClock(st.seconds);
  const mb = (n) => (n / 1e6).toFixed(1);
  let text = st.recording ? `${mb(st.acknowledged)} of ${mb(st.recorded)} MB uploaded` : "";
  if (st.upload === "uploading" && st.error) text = "network trouble, kept in this browser (" + st.error + "); " + text;
  if (st.upload === "uploading" && !st.recording && !st.error) text = `finishing the upload: ${mb(st.acknowledged)} of ${mb(st.recorded)} MB`;
  if (st.upload === "completed") text = "uploaded; processing (see Recordings)";
  if (st.upload === "failed") text = "the upload failed (" + st.error + "): download the file below";
  $("br-status").textContent = text;
  $("br-status").dataset.upload = st.upload;
}

function brRelease(b) {
  if (!b) return;
  if (b.composed) b.composed.stop();
  for (const s of b.inputs) if (s) for (const t of s.getTracks()) t.stop();
  clearInterval(b.clock);
  $("br-preview").srcObject = null;
  $("br-indicator").hidden = true;
  $("br-indicator").classList.remove("paused");
  $("br-pause").hidden = true;
  $("br-bubble").hidden = true;
  $("br-record").textContent = "Record";
  $("br-record").classList.remove("stop");
  if (!$("record-view").hidden) brPreview();
}

// Before recording: what the camera sees and how loud the microphone is,
// so a person checks both first (a screen is chosen when Record is pressed).
let brCheck = null; // {stream, ctx, analyser, timer}
async function brPreview() {
  brPreviewStop();
  const what = $("br-what").value;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      video: what === "screen" ? false : { width: 1280, height: 720 }, audio: true,
    });
    if (br || $("record-view").hidden) { for (const t of stream.getTracks()) t.stop(); return; }
    const ctx = new AudioContext();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 512;
    ctx.createMediaStreamSource(stream).connect(analyser);
    const buf = new Float32Array(analyser.fftSize);
    const timer = setInterval(() => {
      analyser.getFloatTimeDomainData(buf);
      let sum = 0;
      for (const x of buf) sum += x * x;
      $("br-mic-level").value = Math.min(1, Math.sqrt(sum / buf.length) * 4);
    }, 100);
    brCheck = { stream, ctx, timer };
    $("br-preview").srcObject = what === "screen" ? null : stream;
    $("br-status").textContent = what === "screen" ? "Check your microphone; the screen is chosen when you press Record." : "Check your camera and microphone, then press Record.";
  } catch (e) {
    $("br-status").textContent = "No camera or microphone: " + e.message;
  }
}

function brPreviewStop() {
  if (!brCheck) return;
  clearInterval(brCheck.timer);
  for (const t of brCheck.stream.getTracks()) t.stop();
  brCheck.ctx.close();
  brCheck = null;
  $("br-mic-level").value = 0;
  if (!br) $("br-preview").srcObject = null;
}

// 3, 2, 1 over the preview before the recording starts.
async function countdown() {
  const el = $("br-countdown");
  el.hidden = false;
  for (const n of ["3", "2", "1"]) {
    el.textContent = n;
    await new Promise((r) => setTimeout(r, 1000));
  }
  el.hidden = true;
}

// The camera bubble of "screen and camera": where it is (shares of the
// picture) and its size; dragged over the preview, or moved by the keys.
const bubble = { x: 0, y: 0, size: 0.25 };
function bubbleHome(w, h) {
  const m = w / 64, r = (h * bubble.size) / 2;
  bubble.x = 1 - (m + r) / w;
  bubble.y = 1 - (m + r) / h;
}
function placeBubble() {
  const v = $("br-preview"), b = $("br-bubble");
  if (!v.videoWidth) return;
  // The picture's box inside the element (object-fit: contain).
  const s = Math.min(v.clientWidth / v.videoWidth, v.clientHeight / v.videoHeight);
  const w = v.videoWidth * s, h = v.videoHeight * s;
  const x0 = v.offsetLeft + (v.clientWidth - w) / 2, y0 = v.offsetTop + (v.clientHeight - h) / 2;
  const d = h * bubble.size;
  Object.assign(b.style, { width: d + "px", height: d + "px", left: x0 + bubble.x * w - d / 2 + "px", top: y0 + bubble.y * h - d / 2 + "px" });
  b.dataset.x = bubble.x.toFixed(3);
  b.dataset.y = bubble.y.toFixed(3);
}
function moveBubble(x, y) {
  const v = $("br-preview");
  const rx = (v.videoHeight * bubble.size) / 2 / v.videoWidth, ry = bubble.size / 2;
  bubble.x = Math.min(1 - rx, Math.max(rx, x));
  bubble.y = Math.min(1 - ry, Math.max(ry, y));
  placeBubble();
}
$("br-bubble").addEventListener("pointerdown", (e) => {
  e.preventDefault();
  const v = $("br-preview");
  const move = (ev) => {
    const r = v.getBoundingClientRect();
    const s = Math.min(r.width / v.videoWidth, r.height / v.videoHeight);
    const w = v.videoWidth * s, h = v.videoHeight * s;
    moveBubble((ev.clientX - r.left - (r.width - w) / 2) / w, (ev.clientY - r.top - (r.height - h) / 2) / h);
  };
  const up = () => { window.removeEventListener("pointermove", move); window.removeEventListener("pointerup", up); };
  window.addEventListener("pointermove", move);
  window.addEventListener("pointerup", up);
});
$("br-bubble").addEventListener("keydown", (e) => {
  const step = { ArrowLeft: [-0.05, 0], ArrowRight: [0.05, 0], ArrowUp: [0, -0.05], ArrowDown: [0, 0.05] }[e.key];
  if (!step) return;
  e.preventDefault();
  moveBubble(bubble.x + step[0], bubble.y + step[1]);
});
window.addEventListener("resize", placeBubble);

// Recordings an earlier page left unfinished in this browser: upload them
// now, save them as files, or discard them.
async function showLeftovers() {
  const list = await TapedeckRecorder.leftovers().catch(() => []);
  $("br-leftovers").hidden = list.length === 0;
  $("br-leftover-list").replaceChildren(...list.map((u) => {
    const li = document.createElement("li");
    li.dataset.key = u.key;
    const label = document.createElement("span");
    label.textContent = `${u.metadata.title || u.metadata.filename} · ${(u.bytes / 1e6).toFixed(1)} MB`;
    const send = document.createElement("button");
    send.textContent = "Upload";
    send.className = "upload";
    send.onclick = async () => {
      send.disabled = true;
      const up = TapedeckRecorder.resume(u, {
        auth, giveUpMs: Number(localStorage.getItem("tapedeck.giveUpMs")) || 60000,
        onChange: (x) => { label.textContent = `${u.metadata.title} · ${x.state}` + (x.error ? ` (${x.error})` : ""); },
      });
      await up.done;
      li.dataset.upload = up.state;
      if (up.state === "completed") li.remove();
      else send.disabled = false;
      $("br-leftovers").hidden = $("br-leftover-list").children.length === 0;
    };
    const save = document.createElement("button");
    save.textContent = "Download";
    save.className = "link";
    save.onclick = async () => {
      const a = document.createElement("a");
      a.href = URL.createObjectURL(await TapedeckRecorder.fileOf(u));
      a.download = (u.metadata.filename || "recording.webm");
      a.click();
    };
    const drop = document.createElement("button");
    drop.textContent = "Discard";
    drop.className = "link danger";
    drop.onclick = async () => {
      if (!confirm("Discard this recording? It exists only in this browser.")) return;
      await TapedeckRecorder.discard(u.key);
      showLeftovers();
    };
    li.append(label, " ", send, " ", save, " ", drop);
    return li;
  }));
}

async function brStart() {
  const what = $("br-what").value;
  $("br-download").hidden = true;
  brPreviewStop();
  const media = navigator.mediaDevices;
  const inputs = [];
  const grab = async (p) => { const s = await p; inputs.push(s); return s; };
  let stream, composed = null;
  try {
    if (what === "camera") {
      stream = await grab(media.getUserMedia({ video: { width: 1280, height: 720 }, audio: true }));
    } else {
      const screen = await grab(media.getDisplayMedia({ video: { frameRate: 30 }, audio: true }));
      const second = what === "both"
        ? await grab(media.getUserMedia({ video: { width: 640, height: 360 }, audio: true }))
        : await grab(media.getUserMedia({ audio: true })).catch(() => null);
      const set = screen.getVideoTracks()[0].getSettings();
      const scale = Math.min(1, 1920 / (set.width || 1920));
      const even = (n) => 2 * Math.round(n / 2);
      const sources = [
        { video: TapedeckRecorder.videoOf(screen), stream: screen },
        { video: what === "both" ? TapedeckRecorder.videoOf(second) : null, stream: second },
      ];
      const width = even((set.width || 1280) * scale), height = even((set.height || 720) * scale);
      bubbleHome(width, height);
      composed = TapedeckRecorder.compose({
        sources: () => sources, layout: "pip", width, height,
        bubble: what === "both" ? () => bubble : undefined,
      });
      stream = composed.stream;
      // The browser's own "Stop sharing" ends the recording too.
      screen.getVideoTracks()[0].addEventListener("ended", () => { if (br) brStop(); });
    }
  } catch (e) {
    for (const s of inputs) for (const t of s.getTracks()) t.stop();
    throw new Error("could not start: " + e.message);
  }
  $("br-preview").srcObject = stream;
  await countdown();
  const title = ({ camera: "Camera", screen: "Screen", both: "Screen and camera" })[what] + " " + new Date().toLocaleString();
  const recorder = TapedeckRecorder.record(stream, {
    auth, title, format: $("br-format").value || undefined,
    giveUpMs: Number(localStorage.getItem("tapedeck.giveUpMs")) || 60000,
    onChange: brShow,
  });
  br = { recorder, composed, inputs, title, clock: setInterval(() => brShow(recorder.state()), 250) };
  $("br-indicator").hidden = false;
  $("br-pause").hidden = false;
  $("br-pause").textContent = "Pause";
  $("br-record").textContent = "Stop";
  $("br-record").classList.add("stop");
  if (what === "both") {
    $("br-bubble").hidden = false;
    const v = $("br-preview");
    if (v.videoWidth) placeBubble(); else v.addEventListener("loadedmetadata", placeBubble, { once: true });
  }
}

$("br-pause").onclick = () => {
  if (!br) return;
  const paused = br.recorder.state().paused;
  if (paused) br.recorder.resume(); else br.recorder.pause();
  $("br-pause").textContent = paused ? "Pause" : "Resume";
  $("br-indicator").classList.toggle("paused", !paused);
};
$("br-what").onchange = () => { if (!br) brPreview(); };

async function brStop() {
  const b = br;
  br = null;
  clearInterval(b.clock);
  const done = b.recorder.stop();
  // The inputs stop once MediaRecorder has given its last chunk; the
  // upload goes on (and may be retried) after.
  await b.recorder.ended;
  brRelease(b);
  done.then(async (st) => {
    $("br-status").dataset.seconds = st.seconds.toFixed(3);
    brShow(st);
    if (st.upload !== "failed") return;
    const file = await b.recorder.file();
    const a = $("br-download");
    a.href = URL.createObjectURL(file);
    a.download = b.title.replace(/[^\w .-]+/g, "_") + (file.type === "video/mp4" ? ".mp4" : ".webm");
    a.hidden = false;
  });
}


$("br-record").onclick = async () => {
  $("br-record").disabled = true;
  try { if (br) await brStop(); else await brStart(); }
  catch (e) { Words.show($("br-status"), e); }
  $("br-record").disabled = false;
};
