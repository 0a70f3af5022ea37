// The peer of `bench/rooms.sh --calls`: a call server on werift speaking
// tapedeck's call page signalling (docs/rooms.md: join, joined, offer,
// answer, leave), each participant's tracks forwarded to the others in its
// room as werift's SFU examples do (the remote track added to a send-only
// transceiver), and, with DIR, each participant recorded by werift's
// MediaRecorder into one WebM (what a Node.js SFU records with).
//   node werift_call.mjs PORT [DIR]
// ws://127.0.0.1:PORT/call/ROOM is a room's call socket.
// Not done: keyframe requests are not forwarded (the bench's clip has a
// keyframe every 2 s).
import { WebSocketServer } from "ws";
import { RTCPeerConnection } from "werift";
import { MediaRecorder } from "werift/nonstandard";

const [port, dir] = process.argv.slice(2);
const rooms = new Map();
let next = 0;

class Participant {
  constructor(ws, room) {
    this.id = ++next;
    this.ws = ws;
    this.room = room;
    this.pc = null;
    this.tracks = [];
    this.busy = false;
    this.again = false;
    this.recorder = null;
  }

  send(m) {
    if (this.ws.readyState === 1) this.ws.send(JSON.stringify(m));
  }

  // One offer at a time, as tapedeck does: a change while one is out waits
  // for its answer.
  async offer() {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    this.again = false;
    await this.pc.setLocalDescription(await this.pc.createOffer());
    this.send({ type: "offer", sdp: this.pc.localDescription.sdp });
  }

  forward(track) {
    this.pc.addTransceiver(track, { direction: "sendonly" });
    this.offer().catch((e) => console.error("offer", e));
  }

  async join(sdp) {
    this.pc = new RTCPeerConnection();
    if (dir) {
      this.recorder = new MediaRecorder({ path: `${dir}/w${this.id}.webm`, numOfTracks: 2, width: 1280, height: 720 });
    }
    this.pc.onTrack.subscribe((track) => {
      this.tracks.push(track);
      if (this.recorder) this.recorder.addTrack(track);
      for (const p of this.room) if (p !== this && p.pc) p.forward(track);
    });
    await this.pc.setRemoteDescription({ type: "offer", sdp });
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    this.send({ type: "joined", answer: this.pc.localDescription.sdp, you: { peer: `peer_${this.id}` } });
    for (const p of this.room) if (p !== this) for (const t of p.tracks) this.forward(t);
    this.room.add(this);
  }

  async answer(sdp) {
    await this.pc.setRemoteDescription({ type: "answer", sdp });
    this.busy = false;
    if (this.again) await this.offer();
  }

  async leave() {
    this.room.delete(this);
    if (this.recorder) await this.recorder.stop().catch(() => {});
    if (this.pc) await this.pc.close().catch(() => {});
  }
}

new WebSocketServer({ port: Number(port), host: "127.0.0.1" }).on("connection", (ws, req) => {
  const name = req.url.split("?")[0];
  if (!rooms.has(name)) rooms.set(name, new Set());
  const me = new Participant(ws, rooms.get(name));
  ws.on("message", async (data) => {
    try {
      const m = JSON.parse(String(data));
      if (m.type === "join") await me.join(m.offer);
      else if (m.type === "answer") await me.answer(m.sdp);
      else if (m.type === "leave") ws.close();
    } catch (e) {
      console.error(e);
      me.send({ type: "error", code: "failed", message: String(e) });
    }
  });
  ws.on("close", () => me.leave());
});
