// The peer of bench/rooms.sh: werift's MediaRecorder (what a Node.js SFU
// records with) behind a minimal WHIP endpoint, one peer connection and one
// WebM file (audio and video) per publisher.
//   node werift_whip.mjs PORT DIR
// POST /whip with an SDP offer → 201, the answer, Location /whip/N;
// DELETE /whip/N stops that recorder.
import http from "node:http";
import { RTCPeerConnection } from "werift";
import { MediaRecorder } from "werift/nonstandard";

const [port, dir] = process.argv.slice(2);
const sessions = new Map();
let next = 0;

function body(req) {
  return new Promise((done) => {
    let b = "";
    req.on("data", (c) => (b += c));
    req.on("end", () => done(b));
  });
}

http
  .createServer(async (req, res) => {
    try {
      const text = await body(req);
      if (req.method === "POST") {
        const id = String(++next);
        const pc = new RTCPeerConnection();
        const recorder = new MediaRecorder({ path: `${dir}/w${id}.webm`, numOfTracks: 2, width: 1280, height: 720 });
        pc.onTrack.subscribe((track) => recorder.addTrack(track));
        await pc.setRemoteDescription({ type: "offer", sdp: text });
        await pc.setLocalDescription(await pc.createAnswer());
        sessions.set(id, { pc, recorder });
        res.writeHead(201, { "Content-Type": "application/sdp", Location: `/whip/${id}` });
        res.end(pc.localDescription.sdp);
      } else if (req.method === "DELETE") {
        const s = sessions.get(req.url.split("/").pop());
        if (s) {
          await s.recorder.stop();
          await s.pc.close();
        }
        res.writeHead(204).end();
      } else {
        res.writeHead(405).end();
      }
    } catch (e) {
      res.writeHead(500).end(String(e));
    }
  })
  .listen(Number(port), "127.0.0.1");
