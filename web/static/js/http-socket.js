// The HTTP fallback (docs/PROTOCOL.md "HTTP fallback") behind the part of
// the WebSocket interface the room uses: send, bufferedAmount, readyState,
// close, binaryType 'arraybuffer' and the open/message/close events (as
// on* handlers and listeners). Used when a WebSocket is refused.
// Server -> page: GET /h/down streams frames (a fetch body read as it
// comes); page -> server: POST /h/up carries queued frames in order.
// Frame: 1-byte opcode (1 text, 2 binary, 8 close, 9 ping), 4-byte
// big-endian length, data.

const TEXT = 1, BINARY = 2, CLOSE = 8, PING = 9;
const MAX_FRAME = 64 << 10;      // protocol.MaxFrameBytes
const MAX_BODY = 1 << 20;        // protocol.MaxHTTPUpBody
const RETRIES = 5;               // failed requests in a row before the session counts as lost
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class HttpSocket extends EventTarget {
  /** wsURL: the WebSocket URL the fallback replaces (ws[s]://host/ws). */
  constructor(wsURL) {
    super();
    this.url = wsURL;
    this.readyState = 0;
    this.binaryType = 'arraybuffer';
    this.bufferedAmount = 0;
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    for (const t of ['open', 'message', 'close', 'error']) this.addEventListener(t, (ev) => this['on' + t]?.(ev));
    this._base = wsURL.replace(/^ws/, 'http').replace(/\/ws$/, '');
    this._abort = new AbortController();
    this._queue = [];              // encoded frames not yet taken by the server
    this._upSeq = 1;               // number of _queue[0]
    this._ack = 0;                 // frames received
    this._uploading = false;
    this._flushed = [];            // resolvers waiting for an empty queue
    this._open();
  }

  async _open() {
    try {
      const r = await this._fetch('/h/open', { method: 'POST' });
      if (!r.ok) throw new Error(`the server answered ${r.status}: ${(await r.text()).trim()}`);
      this._token = (await r.json()).s;
      if (typeof this._token !== 'string' || this.readyState !== 0) throw new Error('bad answer to open');
      this.readyState = 1;
      this.dispatchEvent(new Event('open'));
      this._down();
      this._up();
    } catch (e) {
      this.dispatchEvent(new Event('error'));
      this._end(1006, e.message);
    }
  }

  _fetch(path, init = {}) {
    return fetch(this._base + path, { ...init, cache: 'no-store', credentials: 'omit', signal: this._abort.signal });
  }

  _q(key, n) { return `?s=${encodeURIComponent(this._token)}&${key}=${n}`; }

  /** Streams frames, asking again from the last whole frame when a stream
   * ends or breaks (a proxy cut it): none is lost or repeated. */
  async _down() {
    let fails = 0;
    while (this.readyState === 1 || this.readyState === 2) {
      let answered = false;
      try {
        const r = await this._fetch('/h/down' + this._q('ack', this._ack));
        if (r.status === 404 || r.status === 410) return this._end(1006, 'the server ended the session');
        if (!r.ok) throw new Error(`down: the server answered ${r.status}`);
        answered = true;
        const reader = r.body.getReader();
        let buf = new Uint8Array(0);
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          buf = buf.length ? concat([buf, value]) : value;
          while (buf.length >= 5) {
            const n = new DataView(buf.buffer, buf.byteOffset, 5).getUint32(1);
            if (n > MAX_FRAME) return this._end(1002, 'frame over the size limit');
            if (buf.length < 5 + n) break;
            const op = buf[0], data = buf.slice(5, 5 + n);
            buf = buf.subarray(5 + n);
            this._ack++;
            if (!this._frame(op, data)) return;
          }
        }
        fails = 0;
      } catch (e) {
        if (this.readyState === 3) return;
        fails = answered ? 0 : fails + 1;
        if (fails > RETRIES) return this._end(1006, e.message);
        await sleep(200 * fails);
      }
    }
  }

  /** Handles one frame; false once the session is over. */
  _frame(op, data) {
    if (this.readyState === 3) return false;
    if (op === TEXT) this.dispatchEvent(new MessageEvent('message', { data: new TextDecoder().decode(data) }));
    else if (op === BINARY) this.dispatchEvent(new MessageEvent('message', { data: data.buffer }));
    else if (op === CLOSE) {
      const code = data.length >= 2 ? (data[0] << 8) | data[1] : 1005;
      const reason = new TextDecoder().decode(data.subarray(2));
      this._push(CLOSE, data); // the reply, as a WebSocket gives
      this._whenFlushed(1000).then(() => this._end(code, reason, true));
      this.readyState = 2;
      return false;
    }
    return true; // pings: every request already shows the server we are here
  }

  /** Queues data (a string: text; an ArrayBuffer or view: binary). */
  send(data) {
    if (this.readyState === 0) throw new DOMException('still connecting', 'InvalidStateError');
    if (this.readyState !== 1) return;
    if (typeof data === 'string') this._push(TEXT, new TextEncoder().encode(data));
    else this._push(BINARY, ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data));
  }

  _push(op, bytes) {
    const f = new Uint8Array(5 + bytes.length);
    f[0] = op;
    new DataView(f.buffer).setUint32(1, bytes.length);
    f.set(bytes, 5);
    this._queue.push(f);
    this.bufferedAmount += f.length;
    this._up();
  }

  /** POSTs what is queued, in order, in bodies of at most MAX_BODY; a POST
   * that fails in transit is sent again (the server skips frames it has). */
  async _up() {
    if (this._uploading || !this._token) return;
    this._uploading = true;
    try {
      while (this._queue.length && this.readyState !== 3) {
        let n = 0, size = 0;
        while (n < this._queue.length && (n === 0 || size + this._queue[n].length <= MAX_BODY)) size += this._queue[n++].length;
        // A Blob, not one big array: Chromium hands a Blob body to the
        // network by reference (an ArrayBuffer body through the service
        // worker was copied at about 0.5 MiB/s on a loaded test machine).
        const body = new Blob(this._queue.slice(0, n));
        for (let tries = 0; ; tries++) {
          try {
            const r = await this._fetch('/h/up' + this._q('seq', this._upSeq), { method: 'POST', body, headers: { 'Content-Type': 'application/octet-stream' } });
            if (r.ok) break;
            const why = (await r.text()).trim();
            if (r.status >= 400 && r.status < 500) return this._end(r.status === 413 ? 1009 : 1002, why);
            throw new Error(`up: the server answered ${r.status}`);
          } catch (e) {
            if (this.readyState === 3) return;
            if (tries >= RETRIES) return this._end(1006, e.message);
            await sleep(200 * (tries + 1));
          }
        }
        this._queue.splice(0, n);
        this._upSeq += n;
        this.bufferedAmount -= size;
      }
    } finally {
      this._uploading = false;
      if (!this._queue.length) for (const f of this._flushed.splice(0)) f();
    }
  }

  _whenFlushed(ms) {
    return new Promise((resolve) => {
      if (!this._queue.length) return resolve();
      const t = setTimeout(resolve, ms);
      this._flushed.push(() => { clearTimeout(t); resolve(); });
    });
  }

  /** Closes as a WebSocket does: a close frame goes to the server (within
   * 1 s), then the close event. */
  close(code = 1000, reason = '') {
    if (this.readyState >= 2) return;
    if (this.readyState === 0) return this._end(1006, 'closed before open');
    this.readyState = 2;
    const r = new TextEncoder().encode(reason).subarray(0, 123);
    const data = new Uint8Array(2 + r.length);
    data[0] = code >> 8; data[1] = code & 255; data.set(r, 2);
    this._push(CLOSE, data);
    this._whenFlushed(1000).then(() => this._end(code, reason, true));
  }

  _end(code, reason, wasClean = false) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this._abort.abort();
    this.bufferedAmount = 0;
    for (const f of this._flushed.splice(0)) f();
    this.dispatchEvent(new CloseEvent('close', { code, reason, wasClean }));
  }
}

function concat(parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}
