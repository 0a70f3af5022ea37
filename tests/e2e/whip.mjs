// Publishes Chromium's fake camera and microphone into a room over WHIP
// (RFC 9725) from a page on the server's own origin, for SECONDS, then
// leaves with DELETE on the session's Location.
//   node whip.mjs BASE ROOM TOKEN SECONDS [VIDEO_CODEC]
// VIDEO_CODEC (e.g. VP9) is put first in the video codec preferences.
// WHIP_MUTED=1: the microphone's track is disabled (it sends silence).
// WHIP_SIMULCAST=1: the camera at 1280x720 in three layers (rids q, h, f:
// a quarter, half and full size); WHIP_TOP_OFF="4,3": the top layer is
// switched off 4 s in, for 3 s (as an encoder short of bandwidth drops it).
// WHIP_BARCODE=1: the video is a 640x360 canvas at 30 fps instead of the
// camera, white with the clock barcode across its top (barcode.mjs reads
// it: clock = the page's time in µs, counter = the picture's number).
// Prints the sender's own counts and codecs (RTCPeerConnection stats) as JSON.
import { drive } from "./harness.mjs";

const [base, room, token, seconds, videoCodec] = process.argv.slice(2);
const muted = process.env.WHIP_MUTED === "1";
const simulcast = process.env.WHIP_SIMULCAST === "1";
const barcode = process.env.WHIP_BARCODE === "1";
const [topOffAt, topOffFor] = (process.env.WHIP_TOP_OFF || "").split(",").map(Number);

await drive(
  [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
  ],
  async (page, result) => {
    await page.goto(`${base}/healthz`);
    Object.assign(
      result,
      await page.evaluate(
        async ({ room, token, seconds, videoCodec, muted, simulcast, topOffAt, topOffFor, barcode }) => {
          const stream = await navigator.mediaDevices.getUserMedia({
            audio: true,
            video: simulcast ? { width: 1280, height: 720, frameRate: 30 } : { width: 640, height: 360, frameRate: 30 },
          });
          if (barcode) {
            const c = document.createElement("canvas");
            c.width = 640; c.height = 360;
            const g = c.getContext("2d");
            let n = 0;
            const draw = () => {
              const w = c.width, h = c.height, strip = Math.max(8, Math.ceil(h * 3 / 100));
              g.fillStyle = "#fff"; g.fillRect(0, 0, w, h);
              g.fillStyle = "#2a6"; g.fillRect((n * 6) % (w - 60), h / 2 - 30, 60, 60);
              const clock = Math.floor(performance.now() * 1000) >>> 0, counter = n & 0xffff;
              const c8 = (clock ^ (clock >>> 8) ^ (clock >>> 16) ^ (clock >>> 24)) >>> 0;
              const check = (c8 ^ counter ^ (counter >>> 8) ^ 0xa5) & 0xff;
              const bits = [];
              for (let i = 31; i >= 0; i--) bits.push((clock >>> i) & 1);
              for (let i = 15; i >= 0; i--) bits.push((counter >> i) & 1);
              for (let i = 7; i >= 0; i--) bits.push((check >> i) & 1);
              g.fillStyle = "#000";
              bits.forEach((b, i) => {
                if (b) g.fillRect(Math.floor(i * w / 56), 0, Math.floor((i + 1) * w / 56) - Math.floor(i * w / 56), strip);
              });
              n++;
            };
            draw();
            setInterval(draw, 33);
            stream.getVideoTracks().forEach((t) => { stream.removeTrack(t); t.stop(); });
            stream.addTrack(c.captureStream(30).getVideoTracks()[0]);
          }
          if (muted) stream.getAudioTracks().forEach((t) => (t.enabled = false));
          const pc = new RTCPeerConnection();
          let videoSender = null;
          for (const track of stream.getTracks()) {
            const layers = simulcast && track.kind === "video"
              ? { sendEncodings: [
                  { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150000 },
                  { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500000 },
                  { rid: "f", maxBitrate: 1500000 },
                ] }
              : {};
            const t = pc.addTransceiver(track, { direction: "sendonly", streams: [stream], ...layers });
            if (track.kind === "video") videoSender = t.sender;
            if (track.kind === "video" && videoCodec) {
              const want = `video/${videoCodec}`.toLowerCase();
              const all = RTCRtpSender.getCapabilities("video").codecs;
              const first = all.filter((c) => c.mimeType.toLowerCase() === want && !/profile-id=[^0]/.test(c.sdpFmtpLine || ""));
              t.setCodecPreferences([...first, ...all.filter((c) => !first.includes(c))]);
            }
          }
          await pc.setLocalDescription(await pc.createOffer());
          // Non-trickle: wait for the host candidates.
          await new Promise((done) => {
            if (pc.iceGatheringState === "complete") return done();
            pc.addEventListener("icegatheringstatechange", () => {
              if (pc.iceGatheringState === "complete") done();
            });
            setTimeout(done, 2000);
          });
          const r = await fetch(`/v1/rooms/${room}/whip`, {
            method: "POST",
            headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${token}` },
            body: pc.localDescription.sdp,
          });
          const answer = await r.text();
          if (r.status !== 201) throw new Error(`WHIP POST ${r.status}: ${answer}`);
          const location = r.headers.get("Location");
          await pc.setRemoteDescription({ type: "answer", sdp: answer });
          const t0 = Date.now();
          while (pc.connectionState !== "connected") {
            if (Date.now() - t0 > 15000) throw new Error(`not connected: ${pc.connectionState}`);
            await new Promise((r) => setTimeout(r, 50));
          }
          const connectedMs = Date.now() - t0;
          const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
          const layerStats = async () => {
            const out = {};
            (await pc.getStats()).forEach((s) => {
              if (s.type === "outbound-rtp" && s.kind === "video" && s.rid)
                out[s.rid] = { width: s.frameWidth, frames: s.framesEncoded, keyFrames: s.keyFramesEncoded, limit: s.qualityLimitationReason };
            });
            return out;
          };
          const layers = [];
          if (topOffAt) {
            const top = async (active) => {
              const p = videoSender.getParameters();
              p.encodings.find((e) => e.rid === "f").active = active;
              await videoSender.setParameters(p);
            };
            await sleep(topOffAt * 1000);
            layers.push({ at: "top off", ...(await layerStats()) });
            await top(false);
            await sleep(topOffFor * 1000);
            layers.push({ at: "top on", ...(await layerStats()) });
            await top(true);
            await sleep((seconds - topOffAt - topOffFor) * 1000);
          } else {
            await sleep(seconds * 1000);
          }
          layers.push({ at: "end", ...(await layerStats()) });
          const sent = {};
          const stats = await pc.getStats();
          // The path the media took: the selected pair's local candidate.
          let path = null;
          stats.forEach((s) => {
            if (s.type === "transport" && s.selectedCandidatePairId) {
              const pair = stats.get(s.selectedCandidatePairId);
              const local = pair && stats.get(pair.localCandidateId);
              const remote = pair && stats.get(pair.remoteCandidateId);
              if (local) path = { protocol: local.protocol, type: local.candidateType, relayProtocol: local.relayProtocol || null, remoteProtocol: remote?.protocol, remoteType: remote?.candidateType };
            }
          });
          stats.forEach((s) => {
            if (s.type === "outbound-rtp") {
              const codec = stats.get(s.codecId)?.mimeType;
              sent[s.kind] = { packets: s.packetsSent, frames: s.framesEncoded, keyFrames: s.keyFramesEncoded, codec };
            }
          });
          // The server may be gone by now (a test that kills it).
          const deleteStatus = await fetch(location, {
            method: "DELETE",
            headers: { Authorization: `Bearer ${token}` },
          }).then((d) => d.status, () => null);
          pc.close();
          return { status: r.status, location, connectedMs, sent, path, deleteStatus, layers };
        },
        { room, token, seconds: Number(seconds), videoCodec: videoCodec || "", muted, simulcast, topOffAt: topOffAt || 0, topOffFor: topOffFor || 0, barcode },
      ),
    );
  },
);
