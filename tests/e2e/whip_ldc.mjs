// A WHIP publisher on libdatachannel (the WebRTC stack OBS Studio's WHIP
// output is built on; node-datachannel's prebuilt binding from npm), sent
// H.264 and Opus the way libdatachannel's media-sender example does:
// ffmpeg encodes a test picture and tone to RTP on two local UDP ports and
// each packet is passed on over its track as it comes.
//   node whip_ldc.mjs WHIP_URL TOKEN SECONDS
// Prints JSON: the WHIP status, whether the tracks opened, packets sent.
import dgram from "node:dgram";
import { spawn } from "node:child_process";
import ndc from "node-datachannel";

const [whip, token, seconds] = process.argv.slice(2);
const out = { status: null, opened: [], packets: { video: 0, audio: 0 }, errors: [] };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const pc = new ndc.PeerConnection("whip", { iceServers: [] });
const video = new ndc.Video("0", "SendOnly");
video.addH264Codec(96);
video.addSSRC(1111, "video", "tapedeck", "video");
const audio = new ndc.Audio("1", "SendOnly");
audio.addOpusCodec(111);
audio.addSSRC(2222, "audio", "tapedeck", "audio");
const tracks = { video: pc.addTrack(video), audio: pc.addTrack(audio) };
for (const [kind, t] of Object.entries(tracks)) {
  t.onOpen(() => out.opened.push(kind));
  t.onError((e) => out.errors.push(`${kind}: ${e}`));
}

// The offer once every candidate is in it (WHIP has no trickle here).
const gathered = new Promise((done) => pc.onGatheringStateChange((s) => s === "complete" && done()));
pc.setLocalDescription();
await Promise.race([gathered, sleep(5000)]);
const r = await fetch(whip, {
  method: "POST",
  headers: { "content-type": "application/sdp", authorization: `Bearer ${token}` },
  body: pc.localDescription().sdp,
});
out.status = r.status;
const body = await r.text();
if (r.status !== 201) {
  out.body = body;
} else {
  pc.setRemoteDescription(body, "answer");
  // RTP from ffmpeg, each packet passed on unchanged (payload types and
  // SSRCs as offered).
  const socks = {};
  for (const kind of ["video", "audio"]) {
    const s = dgram.createSocket("udp4");
    s.on("message", (m) => {
      if (tracks[kind].isOpen() && tracks[kind].sendMessageBinary(m)) out.packets[kind]++;
    });
    await new Promise((done) => s.bind(0, "127.0.0.1", done));
    socks[kind] = s;
  }
  for (let i = 0; i < 100 && out.opened.length < 2; i++) await sleep(100);
  const ff = spawn("ffmpeg", [
    "-v", "error", "-re",
    "-f", "lavfi", "-i", `testsrc2=s=640x360:r=30:d=${seconds}`,
    "-f", "lavfi", "-i", `sine=f=440:r=48000:d=${seconds}`,
    "-map", "0:v", "-c:v", "libx264", "-profile:v", "baseline", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
    "-g", "30", "-b:v", "800k",
    "-f", "rtp", "-payload_type", "96", "-ssrc", "1111", `rtp://127.0.0.1:${socks.video.address().port}?pkt_size=1200`,
    "-map", "1:a", "-c:a", "libopus", "-ac", "2", "-b:a", "64k", "-frame_duration", "20",
    "-f", "rtp", "-payload_type", "111", "-ssrc", "2222", `rtp://127.0.0.1:${socks.audio.address().port}`,
  ], { stdio: ["ignore", "ignore", "pipe"] });
  let ffErr = "";
  ff.stderr.on("data", (d) => (ffErr += d));
  await new Promise((done) => ff.on("exit", done));
  if (ffErr) out.errors.push(`ffmpeg: ${ffErr.trim()}`);
  await sleep(500);
  out.state = pc.state();
  const location = r.headers.get("location");
  if (location) {
    const del = await fetch(new URL(location, whip), { method: "DELETE", headers: { authorization: `Bearer ${token}` } });
    out.deleted = del.status;
  }
  for (const s of Object.values(socks)) s.close();
}
pc.close();
ndc.cleanup();
console.log(JSON.stringify(out));
