// Uploads FILE to tapedeck with the real tus-js-client (its Node build),
// through a local TCP proxy that kills the connection once CUT bytes have
// gone towards the server (the first time only): the client must resume
// from the offset the server reports and finish.
//   node tus_node.mjs BASE TOKEN FILE CUT
// Prints JSON: the upload's URL, every request the client made (method and
// Upload-Offset), the file's size and SHA-256.
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import * as tus from "tus-js-client";

const [base, token, file, cutAt] = process.argv.slice(2);
const target = new URL(base);
const cut = Number(cutAt);
let forwarded = 0;
let killed = false;

const proxy = net.createServer((client) => {
  const server = net.connect(Number(target.port), target.hostname);
  let dying = false;
  const end = () => {
    client.destroy();
    server.destroy();
  };
  client.on("data", (d) => {
    // Nothing more goes through a connection being killed.
    if (dying) return;
    if (!killed && forwarded + d.length >= cut) {
      killed = true;
      dying = true;
      server.write(d.subarray(0, cut - forwarded));
      forwarded = cut;
      // Let the server read what was sent, then kill both sides.
      setTimeout(end, 300);
      return;
    }
    forwarded += d.length;
    if (!server.destroyed) server.write(d);
  });
  server.on("data", (d) => {
    if (!client.destroyed) client.write(d);
  });
  for (const s of [client, server]) {
    s.on("error", end);
    s.on("close", end);
  }
});
await new Promise((r) => proxy.listen(0, "127.0.0.1", r));
const { port } = proxy.address();

const bytes = fs.readFileSync(file);
const requests = [];
const url = await new Promise((resolve, reject) => {
  const upload = new tus.Upload(bytes, {
    endpoint: `http://127.0.0.1:${port}/v1/uploads`,
    headers: { Authorization: `Bearer ${token}` },
    metadata: { filename: "camera.webm", filetype: "video/webm" },
    retryDelays: [0, 300, 1000, 2000],
    onBeforeRequest(req) {
      requests.push({ method: req.getMethod(), offset: req.getHeader("Upload-Offset") ?? null });
    },
    onError: reject,
    onSuccess: () => resolve(upload.url),
  });
  upload.start();
});
proxy.close();
console.log(
  JSON.stringify({
    url,
    requests,
    killed,
    size: bytes.length,
    sha256: crypto.createHash("sha256").update(bytes).digest("hex"),
  }),
);
