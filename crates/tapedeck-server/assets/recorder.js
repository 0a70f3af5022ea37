// tapedeck's in-browser recorder, shared by the Record tab (app.js) and the
// call page (call.js).
//
// - TapedeckRecorder.record(stream, options) records a MediaStream with
//   MediaRecorder in 1 s chunks and uploads them while it records, over
//   tus 1.0.0 (`/v1/uploads` with a deferred length; docs/uploads.md).
//   Every chunk is kept in IndexedDB (in memory where the browser has
//   none) until the whole upload is acknowledged, so a network drop loses
//   nothing: the sender waits, asks the server where it is (HEAD) and goes
//   on from there. If the upload cannot finish, the whole file is offered
//   as a download. Our own small tus client rather than tus-js-client: a
//   recording grows while it uploads, which tus-js-client's File/Blob
//   sources do not model, and its retries give up on their own schedule.
// - TapedeckRecorder.compose(options) draws several videos into one canvas
//   (a grid, or picture in picture) and mixes their sound with WebAudio
//   into one stream: Chrome's MediaRecorder records only the first video
//   track of a stream.
"use strict";

const TapedeckRecorder = (() => {
  const CHUNK_MS = 1000;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // ---- chunk store: IndexedDB, or memory ----------------------------------

  function idb(req) {
    return new Promise((ok, fail) => {
      req.onsuccess = () => ok(req.result);
      req.onerror = () => fail(req.error);
    });
  }

  // Chunks under [key, seq]; each upload's state under its key (its URL,
  // chunk sizes, metadata), so a reloaded page can resume or save it.
  async function openStore() {
    try {
      const open = indexedDB.open("tapedeck-recorder", 2);
      open.onupgradeneeded = () => {
        const db = open.result;
        if (!db.objectStoreNames.contains("chunks")) db.createObjectStore("chunks");
        if (!db.objectStoreNames.contains("uploads")) db.createObjectStore("uploads");
      };
      const db = await idb(open);
      const tx = (name, mode) => db.transaction(name, mode).objectStore(name);
      return {
        kind: "indexeddb",
        put: (key, seq, blob) => idb(tx("chunks", "readwrite").put(blob, [key, seq])),
        get: (key, seq) => idb(tx("chunks", "readonly").get([key, seq])),
        save: (key, info) => idb(tx("uploads", "readwrite").put(info, key)),
        all: () => idb(tx("uploads", "readonly").getAll()),
        drop: async (key) => {
          await idb(tx("chunks", "readwrite").delete(IDBKeyRange.bound([key, 0], [key, Infinity])));
          await idb(tx("uploads", "readwrite").delete(key));
        },
      };
    } catch {
      const m = new Map();
      return {
        kind: "memory",
        put: async (key, seq, blob) => void m.set(key + "/" + seq, blob),
        get: async (key, seq) => m.get(key + "/" + seq),
        save: async () => {},
        all: async () => [],
        drop: async (key) => { for (const k of [...m.keys()]) if (k.startsWith(key + "/")) m.delete(k); },
      };
    }
  }

  function b64(s) {
    return btoa(String.fromCharCode(...new TextEncoder().encode(s)));
  }

  // ---- the upload: a tus client for a file that grows ---------------------

  const active = new Set(); // keys of the uploads running in this page

  class Upload {
    // `saved`: an upload a earlier page left in the store, to finish.
    // `auth()`: the headers that authenticate a request (the web page's
    // CSRF token beside its cookie); else `token` as a bearer token.
    constructor({ token, auth, metadata, giveUpMs, onChange, saved }) {
      this.auth = auth || (() => ({ Authorization: "Bearer " + token }));
      this.metadata = saved ? saved.metadata : metadata;
      this.giveUpMs = giveUpMs;
      this.onChange = onChange;
      this.key = saved ? saved.key : "rec-" + Date.now() + "-" + Math.random().toString(36).slice(2);
      this.sizes = saved ? saved.sizes : []; // bytes of chunk i
      this.total = this.sizes.reduce((a, b) => a + b, 0); // bytes recorded so far
      this.offset = 0; // bytes the server acknowledged
      this.url = saved ? saved.url : null;
      this.recordingId = this.url ? this.url.split("/").pop() : null;
      this.final = !!saved; // every chunk is in
      this.state = "uploading"; // uploading | completed | failed
      this.error = null;
      this.wake = () => {};
      this.store = openStore();
      active.add(this.key);
      // A resumed upload asks the server where it is first.
      this.done = this.run(!!saved).finally(() => active.delete(this.key));
    }

    async save() {
      const { key, url, sizes, metadata, final } = this;
      await (await this.store).save(key, { key, url, sizes: [...sizes], metadata, final, at: Date.now() });
    }

    async add(blob) {
      const store = await this.store;
      const seq = this.sizes.length;
      await store.put(this.key, seq, blob);
      this.sizes.push(blob.size);
      this.total += blob.size;
      await this.save();
      this.wake();
    }

    async finish() {
      this.final = true;
      await this.save();
      this.wake();
      return this.done;
    }

    headers(extra) {
      return { ...this.auth(), "Tus-Resumable": "1.0.0", ...extra };
    }

    // The next piece to send, from the server's offset: the rest of the
    // chunk it falls in (a network cut may have kept part of one).
    async piece() {
      const store = await this.store;
      let start = 0;
      for (let seq = 0; seq < this.sizes.length; seq++) {
        const end = start + this.sizes[seq];
        if (this.offset < end) {
          const blob = await store.get(this.key, seq);
          return blob.slice(this.offset - start);
        }
        start = end;
      }
      return null;
    }

    async create() {
      const meta = Object.entries(this.metadata)
        .filter(([, v]) => v != null && v !== "")
        .map(([k, v]) => k + " " + b64(String(v)))
        .join(",");
      const r = await fetch("/v1/uploads", {
        method: "POST",
        headers: this.headers({ "Upload-Defer-Length": "1", "Upload-Metadata": meta }),
      });
      if (!r.ok) throw await refusal(r);
      this.url = r.headers.get("Location");
      this.recordingId = this.url.split("/").pop();
      await this.save();
      this.onChange(this);
    }

    async send() {
      const body = await this.piece();
      const last = this.final && (body ? this.offset + body.size : this.offset) === this.total;
      if (!body && !last) return false; // nothing to send yet
      const extra = { "Upload-Offset": String(this.offset), "Content-Type": "application/offset+octet-stream" };
      if (last) extra["Upload-Length"] = String(this.total);
      const r = await fetch(this.url, { method: "PATCH", headers: this.headers(extra), body: body || new Blob([]) });
      if (!r.ok) throw await refusal(r);
      this.offset = Number(r.headers.get("Upload-Offset"));
      this.onChange(this);
      return true;
    }

    async resync() {
      const r = await fetch(this.url, { method: "HEAD", headers: this.headers({}) });
      if (!r.ok) throw await refusal(r);
      this.offset = Number(r.headers.get("Upload-Offset"));
      // The length may have reached the server with a reply that did not.
      this.sentLength = this.final && r.headers.get("Upload-Length") === String(this.total);
    }

    async run(resuming) {
      let failingSince = resuming && this.url ? Date.now() : null;
      let backoff = 500;
      for (;;) {
        try {
          if (!this.url) await this.create();
          else if (failingSince) await this.resync();
          failingSince = null;
          this.error = null;
          backoff = 500;
          if (this.final && this.offset === this.total && this.sentLength) break;
          const wait = new Promise((r) => (this.wake = r));
          const sent = await this.send();
          if (sent && this.final && this.offset === this.total) {
            this.sentLength = true;
            break;
          }
          if (!sent) await wait;
        } catch (e) {
          if (e.fatal && e.status === 410 && this.final) {
            // Closed: done, if the last reply was lost on the way.
            try {
              await this.resync();
              if (this.sentLength && this.offset === this.total) continue;
            } catch {}
          }
          if (e.fatal) return this.fail(e.message);
          failingSince ??= Date.now();
          this.error = e.message;
          this.onChange(this);
          // While recording, keep trying: the chunks wait in the store. Once
          // recording stopped, give up after giveUpMs without progress.
          if (this.final && Date.now() - failingSince > this.giveUpMs) return this.fail(e.message);
          await sleep(backoff);
          backoff = Math.min(backoff * 2, 4000);
        }
      }
      // Forgotten by the browser before anyone hears it is done, so a
      // page that lists what is kept never lists it after.
      await (await this.store).drop(this.key);
      this.state = "completed";
      this.error = null;
      this.onChange(this);
    }

    fail(message) {
      this.state = "failed";
      this.error = message;
      this.onChange(this);
    }

    // The whole recording as one file, from the store.
    async file() {
      const store = await this.store;
      const parts = [];
      for (let seq = 0; seq < this.sizes.length; seq++) parts.push(await store.get(this.key, seq));
      return new Blob(parts, { type: this.metadata.filetype });
    }
  }

  async function refusal(r) {
    let message = r.status + " " + r.statusText;
    try {
      const j = await r.json();
      if (j.error) message = j.error.code + ": " + j.error.message;
    } catch {}
    const e = new Error(message);
    e.status = r.status;
    // A refusal that retrying cannot change (quota, size, a closed upload).
    e.fatal = [400, 401, 403, 404, 410, 413, 415].includes(r.status);
    return e;
  }

  function mimeType() {
    for (const t of ["video/webm;codecs=vp8,opus", "video/webm;codecs=vp9,opus", "video/webm", "video/mp4"]) {
      if (MediaRecorder.isTypeSupported(t)) return t;
    }
    return "";
  }

  // Records `stream` and uploads it as it records. Options: token (or
  // auth, a function giving the request headers), title,
  // room, format, preset, giveUpMs (after stop, how long failing uploads
  // are retried before the file is offered as a download; default 60 s),
  // onChange(state). Returns {stop(), pause(), resume(), state()}.
  function record(stream, o) {
    const type = mimeType();
    const rec = new MediaRecorder(stream, { mimeType: type, videoBitsPerSecond: 2_500_000 });
    const ext = type.startsWith("video/mp4") ? "mp4" : "webm";
    let startedAt = performance.now();
    let elapsed = 0; // ms before startedAt (pauses left out)
    let running = true;
    const changed = () => o.onChange && o.onChange(state());
    const upload = new Upload({
      token: o.token,
      auth: o.auth,
      giveUpMs: o.giveUpMs ?? 60000,
      metadata: {
        filename: (o.title || "recording").replace(/[^\w .-]+/g, "_") + "." + ext,
        filetype: type.split(";")[0] || "video/webm",
        title: o.title,
        room: o.room,
        format: o.format,
        preset: o.preset,
      },
      onChange: changed,
    });
    let adding = Promise.resolve();
    const stopped = new Promise((r) => (rec.onstop = r));
    rec.ondataavailable = (e) => {
      adding = adding.then(() => upload.add(e.data));
    };
    rec.start(CHUNK_MS);
    function state() {
      return {
        recording: rec.state !== "inactive",
        paused: rec.state === "paused",
        seconds: (elapsed + (running ? performance.now() - startedAt : 0)) / 1000,
        upload: upload.state,
        recordingId: upload.recordingId,
        recorded: upload.total,
        acknowledged: upload.offset,
        error: upload.error,
      };
    }
    return {
      state,
      upload,
      ended: stopped,
      pause() {
        if (rec.state !== "recording") return;
        rec.pause();
        elapsed += performance.now() - startedAt;
        running = false;
        changed();
      },
      resume() {
        if (rec.state !== "paused") return;
        rec.resume();
        startedAt = performance.now();
        running = true;
        changed();
      },
      // Stops recording; resolves when the upload completed or failed.
      async stop() {
        if (rec.state !== "inactive") {
          if (running) elapsed += performance.now() - startedAt;
          running = false;
          rec.stop();
          await stopped;
        }
        await adding;
        await upload.finish();
        return state();
      },
      // The whole file (for the download offered when the upload failed).
      file: () => upload.file(),
    };
  }

  // ---- composition ---------------------------------------------------------

  // A timer that keeps ticking in a background tab (a worker's timers are
  // not throttled like the page's).
  function ticker(fps, fn) {
    const src = `setInterval(() => postMessage(0), ${1000 / fps});`;
    const w = new Worker(URL.createObjectURL(new Blob([src], { type: "text/javascript" })));
    w.onmessage = fn;
    return () => w.terminate();
  }

  // Draws `v` filling (x, y, w, h), cut to it (a camera in a bubble).
  function cover(v, x, y, w, h, g) {
    const vw = v.videoWidth, vh = v.videoHeight;
    if (!vw || !vh) return;
    const s = Math.max(w / vw, h / vh);
    const dw = vw * s, dh = vh * s;
    g.drawImage(v, x + (w - dw) / 2, y + (h - dh) / 2, dw, dh);
  }

  function fit(v, x, y, w, h, g) {
    const vw = v.videoWidth, vh = v.videoHeight;
    if (!vw || !vh) return;
    const s = Math.min(w / vw, h / vh);
    const dw = vw * s, dh = vh * s;
    g.drawImage(v, x + (w - dw) / 2, y + (h - dh) / 2, dw, dh);
  }

  // Options: sources() → [{video: HTMLVideoElement, stream: MediaStream
  // (its audio is mixed), name}], layout "grid" | "pip" (the first source
  // fills the frame, the second sits in a corner), width, height, fps;
  // with "pip", bubble() → {x, y, size}: the second source in a round
  // bubble centred at (x, y) (shares of the width and height) whose
  // diameter is `size` of the height, read every frame (it can move).
  // Returns {stream, stop()}.
  function compose(o) {
    const width = o.width || 1280, height = o.height || 720, fps = o.fps || 30;
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const g = canvas.getContext("2d");
    const audio = new AudioContext();
    audio.resume().catch(() => {});
    const mix = audio.createMediaStreamDestination();
    const inputs = new Map(); // audio track id -> source node
    function mixAudio(list) {
      const want = new Map();
      for (const s of list) for (const t of s.stream ? s.stream.getAudioTracks() : []) want.set(t.id, t);
      for (const [id, node] of inputs) if (!want.has(id)) { node.disconnect(); inputs.delete(id); }
      for (const [id, t] of want) {
        if (inputs.has(id)) continue;
        const node = audio.createMediaStreamSource(new MediaStream([t]));
        node.connect(mix);
        inputs.set(id, node);
      }
    }
    function draw() {
      const list = o.sources().filter((s) => s.video || s.stream);
      mixAudio(list);
      g.fillStyle = "#000";
      g.fillRect(0, 0, width, height);
      const shown = list.filter((s) => s.video);
      if (o.layout === "pip" && shown.length > 1 && o.bubble) {
        fit(shown[0].video, 0, 0, width, height, g);
        const b = o.bubble();
        const d = Math.round(height * b.size), cx = b.x * width, cy = b.y * height;
        g.save();
        g.beginPath();
        g.arc(cx, cy, d / 2, 0, 2 * Math.PI);
        g.clip();
        cover(shown[1].video, cx - d / 2, cy - d / 2, d, d, g);
        g.restore();
        g.lineWidth = Math.max(2, d / 40);
        g.strokeStyle = "rgba(255,255,255,0.9)";
        g.beginPath();
        g.arc(cx, cy, d / 2, 0, 2 * Math.PI);
        g.stroke();
        return;
      }
      if (o.layout === "pip" && shown.length > 1) {
        fit(shown[0].video, 0, 0, width, height, g);
        const w = Math.round(width / 4), h = Math.round(height / 4), m = Math.round(width / 64);
        g.fillRect(width - w - m, height - h - m, w, h);
        fit(shown[1].video, width - w - m, height - h - m, w, h, g);
        return;
      }
      const n = Math.max(1, shown.length);
      const cols = Math.ceil(Math.sqrt(n)), rows = Math.ceil(n / cols);
      const cw = width / cols, ch = height / rows;
      shown.forEach((s, i) => {
        const x = (i % cols) * cw, y = Math.floor(i / cols) * ch;
        fit(s.video, x, y, cw, ch, g);
        if (s.name) {
          g.font = `bold ${Math.round(ch / 18)}px sans-serif`;
          g.fillStyle = "rgba(0,0,0,0.6)";
          const tw = g.measureText(s.name).width;
          g.fillRect(x + 8, y + ch - ch / 12 - 8, tw + 16, ch / 12);
          g.fillStyle = "#fff";
          g.fillText(s.name, x + 16, y + ch - ch / 36 - 8);
        }
      });
    }
    // Each drawing is handed to the recorder as one frame (requestFrame),
    // so the pictures follow the ticker, not the canvas's change tracking.
    const [video] = canvas.captureStream(0).getVideoTracks();
    const tick = () => {
      draw();
      if (video.requestFrame) video.requestFrame();
    };
    tick();
    const stopTicker = ticker(fps, tick);
    const stream = new MediaStream([video, ...mix.stream.getAudioTracks()]);
    return {
      stream,
      stop() {
        stopTicker();
        for (const t of stream.getTracks()) t.stop();
        audio.close();
      },
    };
  }

  // A video element playing `stream` (muted: composition reads its
  // pictures; sound goes through the mix).
  function videoOf(stream) {
    const v = document.createElement("video");
    v.muted = true;
    v.playsInline = true;
    v.srcObject = stream;
    v.play().catch(() => {});
    return v;
  }

  // Recordings an earlier page left unfinished in this browser (closed or
  // reloaded while uploading, or given up): [{key, metadata, url, bytes,
  // at}], oldest first.
  async function leftovers() {
    const all = await (await openStore()).all();
    return all
      .filter((u) => !active.has(u.key))
      .map((u) => ({ ...u, bytes: u.sizes.reduce((a, b) => a + b, 0) }))
      .sort((a, b) => a.at - b.at);
  }

  // Finishes the upload of a leftover (its recording goes on where the
  // server has it, or a new one is made when it was never created).
  // Options: token or auth, giveUpMs, onChange(upload). Returns the Upload; its
  // `done` settles when it completed or failed.
  function resume(saved, o) {
    return new Upload({ token: o.token, auth: o.auth, giveUpMs: o.giveUpMs ?? 60000, onChange: o.onChange || (() => {}), saved });
  }

  // A leftover as one file.
  async function fileOf(saved) {
    const store = await openStore();
    const parts = [];
    for (let seq = 0; seq < saved.sizes.length; seq++) parts.push(await store.get(saved.key, seq));
    return new Blob(parts, { type: saved.metadata.filetype });
  }

  async function discard(key) {
    await (await openStore()).drop(key);
  }

  return { record, compose, videoOf, leftovers, resume, fileOf, discard };
})();
