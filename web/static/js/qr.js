// QR codes of room links: drawn as SVG with the vendored generator
// (qrcode-generator), read from the camera with the vendored decoder (jsQR)
// in a worker, so decoding never stalls the page.
import qrcode from '../vendor/qrcode-generator/qrcode.mjs';
import * as C from './crypto.js';

const SVG = 'http://www.w3.org/2000/svg';
const QUIET = 4;          // modules of white border the QR standard asks for
const SCAN_EDGE = 720;    // longest side of the frames handed to the decoder
const SCAN_EVERY_MS = 120;

/** An <svg> of text as a QR code (error correction M): black modules on
 * white with a quiet zone, about px CSS pixels wide (a whole number of pixels
 * per module, so edges stay sharp on low-density screens); CSS may shrink it. */
export function qrSVG(text, label = 'QR code', px = 240) {
  const qr = qrcode(0, 'M');
  qr.addData(text);
  qr.make();
  const n = qr.getModuleCount();
  const size = n + 2 * QUIET;
  let d = '';
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) if (qr.isDark(r, c)) d += `M${c + QUIET} ${r + QUIET}h1v1h-1z`;
  }
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${size} ${size}`);
  const side = String(Math.max(1, Math.floor(px / size)) * size);
  svg.setAttribute('width', side);
  svg.setAttribute('height', side);
  svg.setAttribute('shape-rendering', 'crispEdges');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  svg.dataset.modules = String(n);
  const bg = document.createElementNS(SVG, 'rect');
  bg.setAttribute('width', String(size));
  bg.setAttribute('height', String(size));
  bg.setAttribute('fill', '#fff');
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', d);
  path.setAttribute('fill', '#000');
  svg.append(bg, path);
  return svg;
}

/** The room secret in a scanned text, which must be a room link of origin
 * (this server). Throws an Error with a message to show; messages never
 * quote the secret. */
export function roomFromScan(text, origin) {
  let url;
  try {
    url = new URL(String(text).trim());
  } catch {
    throw new Error('This QR code is not a room link. Scan the code shown under “Invite others” in a room.');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new Error('This QR code is not a room link. Scan the code shown under “Invite others” in a room.');
  }
  if (url.origin !== origin) {
    throw new Error(`This QR code links to ${url.host}, not to this server (${new URL(origin).host}). Only rooms on this server can be joined by scanning.`);
  }
  try {
    return C.parseInvite(String(text).trim()).secret;
  } catch {
    throw new Error('This QR code links to this server but holds no valid room key.');
  }
}

export function cameraError(e) {
  switch (e?.name) {
    case 'NoMediaDevices':
      return 'The camera needs a secure page: open Cloakroom over HTTPS (or on localhost).';
    case 'NotAllowedError': case 'SecurityError':
      return 'Camera access was denied. Allow the camera for this site, or paste the link instead.';
    case 'NotFoundError': case 'OverconstrainedError':
      return 'No camera found. Paste the link or type the code instead.';
    case 'NotReadableError': case 'AbortError':
      return 'The camera is in use by another app. Close it and try again.';
    default:
      return 'Could not start the camera: ' + (e?.message || e);
  }
}

/** Scans QR codes from the back camera into video. onText(text) is called
 * for every code read (the caller stops the scanner when it is done);
 * onError(message) when the decoder fails (the scanner has stopped then).
 * Resolves to a scanner with stop(); rejects when the camera cannot start. */
export async function startScanner(video, { onText, onError }) {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw Object.assign(new Error('no camera access on this page'), { name: 'NoMediaDevices' });
  }
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { facingMode: 'environment', width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false,
  });
  const s = new Scanner(video, stream, onText, onError);
  try {
    await s.start();
  } catch (e) {
    s.stop();
    throw e;
  }
  return s;
}

class Scanner {
  constructor(video, stream, onText, onError) {
    Object.assign(this, { video, stream, onText, onError, stopped: false, busy: false, timer: 0 });
    this.canvas = document.createElement('canvas');
    this.ctx = this.canvas.getContext('2d', { willReadFrequently: true });
    this.worker = new Worker(new URL('./qr-worker.js', import.meta.url));
    this.worker.onmessage = (e) => this.onResult(e.data);
    this.worker.onerror = (e) => {
      e.preventDefault();
      this.stop();
      this.onError?.('The QR decoder failed to load: ' + (e.message || 'unknown error'));
    };
  }

  async start() {
    this.video.muted = true;
    this.video.playsInline = true;
    this.video.srcObject = this.stream;
    await this.video.play();
    this.tick();
  }

  tick() {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.tick(), SCAN_EVERY_MS);
    const v = this.video;
    if (this.busy || v.readyState < 2 || !v.videoWidth) return;
    const k = Math.min(1, SCAN_EDGE / Math.max(v.videoWidth, v.videoHeight));
    const w = Math.round(v.videoWidth * k), h = Math.round(v.videoHeight * k);
    if (this.canvas.width !== w || this.canvas.height !== h) Object.assign(this.canvas, { width: w, height: h });
    this.ctx.drawImage(v, 0, 0, w, h);
    const img = this.ctx.getImageData(0, 0, w, h);
    this.busy = true;
    this.worker.postMessage({ data: img.data, width: w, height: h }, [img.data.buffer]);
  }

  onResult({ text }) {
    this.busy = false;
    if (!this.stopped && text) this.onText(text);
  }

  stop() {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    for (const t of this.stream.getTracks()) t.stop();
    this.video.pause();
    this.video.srcObject = null;
    this.worker.terminate();
  }
}
