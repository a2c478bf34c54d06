// Draws the PWA icons (web/static/icons/*.png) from the shapes of
// web/static/favicon.svg — a blue rounded square with a white padlock — with
// 4×4 supersampling, and writes them as PNGs with node's zlib (no image tool
// needed). Run once after changing the favicon: node scripts/icons.mjs
// The output is deterministic, so a re-run on an unchanged script changes no file.
import { writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const out = join(dirname(dirname(fileURLToPath(import.meta.url))), 'web', 'static', 'icons');
const BLUE = [0x3b, 0x5b, 0xdb];
const WHITE = [0xff, 0xff, 0xff];

// In favicon.svg's 32×32 user space.
function inRoundRect(x, y, x0, y0, x1, y1, r) {
  if (x < x0 || x > x1 || y < y0 || y > y1) return false;
  const cx = Math.min(Math.max(x, x0 + r), x1 - r);
  const cy = Math.min(Math.max(y, y0 + r), y1 - r);
  return (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
}
function distSeg(x, y, ax, ay, bx, by) {
  const dx = bx - ax, dy = by - ay;
  const t = Math.max(0, Math.min(1, ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)));
  return Math.hypot(x - ax - t * dx, y - ay - t * dy);
}
function inLock(x, y) {
  // body: M9 14h14v11a2 2 0 0 1-2 2H11a2 2 0 0 1-2-2z (square top, rounded bottom)
  if (x >= 9 && x <= 23 && y >= 14 && y <= 20) return true;
  if (inRoundRect(x, y, 9, 14, 23, 27, 2)) return true;
  // shackle: M12 14v-3a4 4 0 0 1 8 0v3, stroke 2.5
  const w = 1.25;
  if (distSeg(x, y, 12, 11, 12, 14) <= w || distSeg(x, y, 20, 11, 20, 14) <= w) return true;
  if (y <= 11 && Math.abs(Math.hypot(x - 16, y - 11) - 4) <= w) return true;
  return false;
}

/** size px; maskable: full-bleed background and the lock inside the safe zone
 * (the central circle of 80 % diameter), else the favicon's rounded square. */
function draw(size, maskable) {
  const px = new Uint8Array(size * size * 4);
  const S = 4;
  // maskable: the drawing scaled to 75 % around its centre: the lock (its farthest
  // corner 9.8 of 16 units from the centre) stays inside the 40 %-radius safe zone.
  const scale = maskable ? 0.75 : 1;
  for (let j = 0; j < size; j++) {
    for (let i = 0; i < size; i++) {
      let bg = 0, fg = 0;
      for (let sj = 0; sj < S; sj++) {
        for (let si = 0; si < S; si++) {
          const u = ((i + (si + 0.5) / S) / size) * 32, v = ((j + (sj + 0.5) / S) / size) * 32;
          const inBg = maskable || inRoundRect(u, v, 0, 0, 32, 32, 7);
          if (!inBg) continue;
          bg++;
          const lu = (u - 16) / scale + 16, lv = (v - 16) / scale + 16;
          if (inLock(lu, lv)) fg++;
        }
      }
      const o = (j * size + i) * 4, n = S * S;
      const a = bg / n, f = bg ? fg / bg : 0;
      for (let c = 0; c < 3; c++) px[o + c] = Math.round(BLUE[c] * (1 - f) + WHITE[c] * f);
      px[o + 3] = Math.round(a * 255);
    }
  }
  return png(size, size, px);
}

const CRC = new Uint32Array(256).map((_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c >>> 0; });
function crc32(buf) { let c = 0xffffffff; for (const b of buf) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; }
function chunk(type, data) {
  const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
function png(w, h, rgba) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = 6; // 8-bit RGBA
  const raw = Buffer.alloc((w * 4 + 1) * h);
  for (let y = 0; y < h; y++) { raw[y * (w * 4 + 1)] = 0; Buffer.from(rgba.buffer, y * w * 4, w * 4).copy(raw, y * (w * 4 + 1) + 1); }
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', Buffer.alloc(0))]);
}

for (const [name, size, maskable] of [['icon-192.png', 192, false], ['icon-512.png', 512, false], ['maskable-512.png', 512, true], ['apple-touch-icon.png', 180, true]]) {
  writeFileSync(join(out, name), draw(size, maskable));
  console.log('wrote', join(out, name));
}
