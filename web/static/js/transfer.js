// A file moving in or out, as the page shows it, and the file names it may
// carry.
import * as C from './crypto.js';
import { Path } from './protocol.js';

/** A file moving in or out. UI code reads its fields. */
export class Transfer {
  constructor(init) {
    Object.assign(this, {
      id: '', name: '', type: '', size: 0, direction: 'recv', peer: '', path: Path.RELAY,
      state: 'preparing', bytes: 0, started: performance.now(), finished: 0, error: '',
      sha256: '', file: null, recipients: new Map(), storage: '',
    }, init);
  }
  /** Bytes per second since the start (or over the whole transfer once finished). */
  get speed() {
    const t = ((this.finished || performance.now()) - this.started) / 1000;
    return t > 0 ? this.bytes / t : 0;
  }
  get fraction() { return this.size > 0 ? Math.min(1, this.bytes / this.size) : (this.state === 'done' ? 1 : 0); }
}

/** Media types a received file may keep: images and videos the page shows
 *  inline. Anything else — text/html, image/svg+xml, application/pdf… —
 *  would be rendered with this page's origin when opened from its blob URL,
 *  so it becomes application/octet-stream (a download). */
export const IMAGE_TYPE = /^image\/(jpeg|png|gif|webp|avif|bmp)$/;
export const VIDEO_TYPE = /^video\/(mp4|webm|quicktime|x-matroska|ogg)$/;
export function safeType(type) {
  const t = String(type || '').toLowerCase();
  return IMAGE_TYPE.test(t) || VIDEO_TYPE.test(t) ? t : 'application/octet-stream';
}

/** Makes a file name safe to show and store: no control characters, and no
 * separator but '/' between the named parts of a relative path (a file sent
 * from a folder: "photos/2024/a.jpg"); no part empty or starting with a dot. */
export function safeName(name) {
  const part = (p) => p.replace(/[\\\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '_').replace(/^\.+/, '');
  let n = String(name || '').split('/').map(part).filter(Boolean).join('/');
  while (C.utf8(n).length > 255) n = n.slice(0, -1);
  n = n.replace(/\/+$/, '');
  return n || 'unnamed';
}
