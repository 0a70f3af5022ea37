// Reads the clock barcode (bench/pages/clock.html's, and the frames tests
// draw: 56 blocks across the top 3% of the picture, clock µs 32 bits,
// counter 16, check 8) off a <video> in the page: {clock, counter}, or null.
export function readVideoMark(videoId) {
  const v = document.getElementById(videoId);
  const w = v.videoWidth, h = v.videoHeight;
  if (!w || v.readyState < 2) return null;
  const c = document.createElement("canvas");
  c.width = w; c.height = h;
  const g = c.getContext("2d", { willReadFrequently: true });
  g.drawImage(v, 0, 0, w, h);
  const strip = Math.max(8, Math.ceil(h * 3 / 100));
  const row = g.getImageData(0, Math.floor(strip / 2), w, 1).data;
  const bits = [];
  for (let i = 0; i < 56; i++) {
    const o = Math.floor((i + 0.5) * w / 56) * 4;
    bits.push((row[o] + row[o + 1] + row[o + 2]) / 3 < 128 ? 1 : 0);
  }
  const take = (from, n) => bits.slice(from, from + n).reduce((a, b) => a * 2 + b, 0);
  const clock = take(0, 32), counter = take(32, 16), check = take(48, 8);
  const c8 = (clock ^ (clock >>> 8) ^ (clock >>> 16) ^ (clock >>> 24)) >>> 0;
  return ((c8 ^ counter ^ (counter >>> 8) ^ 0xa5) & 0xff) === check ? { clock, counter } : null;
}
