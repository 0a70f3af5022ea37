// A publisher whose picture and sound are tied, for lip sync: a canvas that
// flashes white and a 1 kHz tone that beeps at the same instants, once a
// second, published into a room over WHIP from Debian's Chromium.
//   node whip_sync.mjs BASE ROOM TOKEN SECONDS AUDIO_DELAY_S [OWN_RECORDING]
// AUDIO_DELAY_S: the sound track sends nothing for that long after the
// picture starts (its first packet arrives that much later).
// The flash is drawn at the first animation frame after the audio graph
// renders the beep's first sample (its render clock, ac.currentTime), so
// both leave the page within a frame of each other (about 17 ms).
// OWN_RECORDING: a file for the browser's own recording (MediaRecorder,
// WebM) of what it sends, from the same tracks, for comparison: Chromium's
// MediaRecorder stamps sound with when it would be heard (about 30 ms
// after it is rendered), its WebRTC sender with when it is rendered.
// Prints JSON: how many flashes the page drew and the sender's counts.
import { writeFileSync } from "node:fs";
import { drive } from "./harness.mjs";

const [base, room, token, seconds, audioDelay, ownRecording] = process.argv.slice(2);

await drive(
  ["--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns", "--autoplay-policy=no-user-gesture-required"],
  async (page, result) => {
    await page.goto(`${base}/healthz`);
    Object.assign(
      result,
      await page.evaluate(
        async ({ room, token, seconds, audioDelay }) => {
          const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
          // Sound: a tone whose gain is 1 for 100 ms from each whole second
          // of the audio clock (after the first), else 0.
          const ac = new AudioContext({ sampleRate: 48000 });
          await ac.resume();
          const osc = ac.createOscillator();
          osc.frequency.value = 1000;
          const gain = ac.createGain();
          gain.gain.value = 0;
          const dest = ac.createMediaStreamDestination();
          osc.connect(gain).connect(dest);
          osc.start();
          const t0 = Math.ceil(ac.currentTime) + 1;
          const beeps = [];
          for (let k = 0; k < seconds + 5; k++) {
            gain.gain.setValueAtTime(1, t0 + k);
            gain.gain.setValueAtTime(0, t0 + k + 0.1);
            beeps.push(t0 + k);
          }
          // Picture: white while a beep sounds, by the audio clock mapped
          // to the page's.
          const canvas = document.createElement("canvas");
          canvas.width = 320;
          canvas.height = 180;
          const ctx = canvas.getContext("2d");
          let flashes = 0;
          let lastWhite = false;
          const draw = () => {
            // The audio graph's render clock: when its samples are made
            // and handed to the track (not when a speaker would play them,
            // some 30 ms later).
            const audioNow = ac.currentTime;
            const into = audioNow - t0;
            const white = into >= 0 && into - Math.floor(into) < 0.1;
            if (white && !lastWhite) flashes++;
            lastWhite = white;
            ctx.fillStyle = white ? "#fff" : "#000";
            ctx.fillRect(0, 0, canvas.width, canvas.height);
            requestAnimationFrame(draw);
          };
          draw();
          const video = canvas.captureStream(60).getVideoTracks()[0];
          const audio = dest.stream.getAudioTracks()[0];
          const stream = new MediaStream([video, audio]);
          const pc = new RTCPeerConnection();
          pc.addTransceiver(video, { direction: "sendonly", streams: [stream] });
          const at = pc.addTransceiver(audio, { direction: "sendonly", streams: [stream] });
          if (audioDelay > 0) await at.sender.replaceTrack(null);
          await pc.setLocalDescription(await pc.createOffer());
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
          const start = Date.now();
          while (pc.connectionState !== "connected") {
            if (Date.now() - start > 15000) throw new Error(`not connected: ${pc.connectionState}`);
            await sleep(50);
          }
          const chunks = [];
          const own = new MediaRecorder(stream, { mimeType: "video/webm;codecs=vp8,opus" });
          own.ondataavailable = (e) => chunks.push(e.data);
          own.start(1000);
          if (audioDelay > 0) {
            await sleep(audioDelay * 1000);
            await at.sender.replaceTrack(audio);
          }
          await sleep(seconds * 1000);
          const ownDone = new Promise((r) => (own.onstop = r));
          own.stop();
          await ownDone;
          const bytes = new Uint8Array(await new Blob(chunks).arrayBuffer());
          let bin = "";
          for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
          const ownWebm = btoa(bin);
          const sent = {};
          (await pc.getStats()).forEach((s) => {
            if (s.type === "outbound-rtp") sent[s.kind] = { packets: s.packetsSent, frames: s.framesEncoded };
          });
          await fetch(location, { method: "DELETE", headers: { Authorization: `Bearer ${token}` } });
          pc.close();
          return { status: r.status, flashes, sent, ownWebm };
        },
        { room, token, seconds: Number(seconds), audioDelay: Number(audioDelay || 0) },
      ),
    );
    if (ownRecording) writeFileSync(ownRecording, Buffer.from(result.ownWebm, "base64"));
    result.ownBytes = result.ownWebm.length;
    delete result.ownWebm;
  },
);
