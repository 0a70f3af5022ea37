// Records SECONDS in Chromium with MediaRecorder (a canvas drawing a moving
// square and a WebAudio tone, 1 s chunks, VP8 + Opus WebM, as a recorder
// page does), then uploads the file with the real tus-js-client in the page
// (its browser build), in 64 KiB chunks. One PATCH is aborted on the way
// (a network error to the client): it must ask the server where it is
// (HEAD) and go on from there.
//   node mediarecorder.mjs BASE TOKEN SECONDS
// Prints JSON: the upload's URL, its size and SHA-256 (as the page computed
// them), the chunks MediaRecorder gave, and the requests the client made.
import { createRequire } from "node:module";
import { drive } from "./harness.mjs";

const [base, token, seconds] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const tusBundle = require.resolve("tus-js-client/dist/tus.min.js");

await drive(["--autoplay-policy=no-user-gesture-required"], async (page, result) => {
  const requests = [];
  let aborted = false;
  await page.route("**/v1/uploads/**", (route) => {
    const req = route.request();
    requests.push({ method: req.method(), offset: req.headers()["upload-offset"] ?? null });
    if (!aborted && req.method() === "PATCH" && Number(req.headers()["upload-offset"]) > 0) {
      aborted = true;
      return route.abort("connectionreset");
    }
    return route.continue();
  });
  await page.goto(`${base}/healthz`);
  await page.addScriptTag({ path: tusBundle });
  Object.assign(
    result,
    await page.evaluate(
      async ({ token, seconds }) => {
        const canvas = document.createElement("canvas");
        canvas.width = 320;
        canvas.height = 240;
        document.body.append(canvas);
        const g = canvas.getContext("2d");
        let frame = 0;
        const draw = () => {
          g.fillStyle = "#204080";
          g.fillRect(0, 0, 320, 240);
          g.fillStyle = "#f0c000";
          g.fillRect((frame * 4) % 280, 100, 40, 40);
          frame++;
        };
        const timer = setInterval(draw, 33);
        const audio = new AudioContext();
        const tone = audio.createOscillator();
        tone.frequency.value = 440;
        const out = audio.createMediaStreamDestination();
        tone.connect(out);
        tone.start();
        const stream = new MediaStream([
          ...canvas.captureStream(30).getVideoTracks(),
          ...out.stream.getAudioTracks(),
        ]);
        const rec = new MediaRecorder(stream, { mimeType: "video/webm;codecs=vp8,opus" });
        const chunks = [];
        rec.ondataavailable = (e) => e.data.size && chunks.push(e.data);
        const stopped = new Promise((r) => (rec.onstop = r));
        rec.start(1000);
        await new Promise((r) => setTimeout(r, seconds * 1000));
        rec.stop();
        await stopped;
        clearInterval(timer);
        const file = new Blob(chunks, { type: "video/webm" });
        const bytes = new Uint8Array(await file.arrayBuffer());
        const digest = await crypto.subtle.digest("SHA-256", bytes);
        const sha256 = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
        const url = await new Promise((resolve, reject) => {
          const upload = new tus.Upload(file, {
            endpoint: "/v1/uploads",
            headers: { Authorization: `Bearer ${token}` },
            metadata: { filename: "recorder.webm", filetype: "video/webm" },
            chunkSize: 64 * 1024,
            retryDelays: [0, 300, 1000],
            onError: reject,
            onSuccess: () => resolve(upload.url),
          });
          upload.start();
        });
        return { url, size: file.size, sha256, chunks: chunks.length, frames: frame };
      },
      { token, seconds: Number(seconds) },
    ),
  );
  result.requests = requests;
  result.aborted = aborted;
});
