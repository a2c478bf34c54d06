// The browser member of a room: joins over the WebSocket (docs/PROTOCOL.md),
// keeps the member list with verified announcements, sends and receives chat
// envelopes, and moves files through the server's relay store with the same
// sealed manifests and chunks as the Go client.
//
// Events (CustomEvent, detail shown):
//   state     {state: 'connecting'|'connected'|'reconnecting'|'closed', error}
//   members   {}                      (read room.members)
//   chat      {id, from, text, mine, time}
//   transfer  {transfer}              (created, progressed, finished or failed)
import * as C from './crypto.js';
import * as P from './protocol.js';
import { openStore } from './store.js';

const SEND_HIGH_WATER = 8 << 20; // pause uploading while the socket buffers this much
const READ_BLOCK = 64;            // chunks read from the File (and sealed) at a time
const FATAL_CODES = new Set(['bad_verifier', 'version', 'member_taken', 'room_full', 'too_many']);
const ERROR_TEXT = {
  bad_verifier: 'the server refused the room key (wrong link?)',
  version: 'the server speaks another protocol version; reload the page',
  member_taken: 'this member id is in use elsewhere',
  room_full: 'the room is full; try again later',
  too_many: 'the server is busy; try again later',
  relay_full: 'the relay is full; try again later',
  rate_limited: 'too many requests; slow down',
  going_away: 'the server is restarting',
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A file moving in or out. UI code reads its fields. */
export class Transfer {
  constructor(init) {
    Object.assign(this, {
      id: '', name: '', type: '', size: 0, direction: 'recv', peer: '', path: 'relay',
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

/** Makes a file name safe to show and store: no separators or control characters. */
export function safeName(name) {
  let n = String(name || '').replace(/[/\\\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '_');
  n = n.replace(/^\.+/, '');
  while (C.utf8(n).length > 255) n = n.slice(0, -1);
  return n || 'unnamed';
}

export class Room extends EventTarget {
  /** Joins the room of secret (16 bytes) on this page's server. */
  static async join(secret, { wsURL, transport = 'relay' } = {}) {
    const keys = await C.deriveRoom(secret);
    const ident = await C.newIdentity();
    const room = new Room(secret, keys, ident, wsURL ?? defaultWSURL(), transport);
    room.store = await openStore();
    await room._connect(true);
    return room;
  }

  constructor(secret, keys, ident, wsURL, transport) {
    super();
    this.secret = secret;
    this.keys = keys;
    this.ident = ident;
    this.id = C.newUUID();
    this.wsURL = wsURL;
    this.transport = transport;
    this.members = new Map(); // id -> {id, pub, online}
    this.state = 'connecting';
    this.error = '';
    this.ttl = 0;
    this.ice = [];
    this._ws = null;
    this._closed = false;
    this._seen = new Set();      // envelope ids handled (hex)
    this._sends = new Map();     // file id -> {transfer, fileOK: resolver}
    this._recvs = new Map();     // file id -> recv state
    this._inbox = [];
    this._pumping = false;
    this._acks = [];
  }

  emit(type, detail = {}) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  _setState(state, error = '') {
    this.state = state;
    if (error) this.error = error;
    this.emit('state', { state, error });
  }

  get onlineMembers() { return [...this.members.values()].filter((m) => m.online).map((m) => m.id); }

  // ---- connection --------------------------------------------------------

  async _connect(first) {
    const mac = await this.keys.announce(this.id, this.ident.pub);
    const join = {
      t: 'join', v: P.PROTOCOL_VERSION, room: this.keys.roomIDString, verifier: C.b64u(this.keys.verifier),
      member: this.id, pub: C.b64u(this.ident.pub), mac: C.b64u(mac),
    };
    return new Promise((resolve, reject) => {
      let welcomed = false;
      const ws = new WebSocket(this.wsURL);
      ws.binaryType = 'arraybuffer';
      this._ws = ws;
      ws.onopen = () => ws.send(JSON.stringify(join));
      ws.onmessage = (ev) => {
        if (!welcomed) {
          let m;
          try { m = JSON.parse(ev.data); } catch { m = null; }
          if (m?.t === 'welcome') {
            welcomed = true;
            // Handled in order with what follows; resolves once the member list is in.
            this._welcomed = () => { this._setState('connected'); resolve(); };
            this._inbox.push(ev.data);
            if (!this._pumping) this._pump();
            return;
          }
          if (m?.t === 'error') {
            const err = new Error(ERROR_TEXT[m.code] || m.error || m.code);
            err.code = m.code;
            ws.close();
            return first ? reject(err) : this._fatal(err.message);
          }
          return;
        }
        this._inbox.push(typeof ev.data === 'string' ? ev.data : this._preopen(ev.data));
        if (!this._pumping) this._pump();
      };
      ws.onclose = (ev) => {
        if (this._ws !== ws) return;
        this._ws = null;
        this._failSends('the connection to the server was lost');
        if (!welcomed && first) return reject(new Error(`could not join: the server closed the connection (${ev.code})`));
        if (this._closed) return;
        if (ev.code === 4001 || ev.code === 1008 || ev.code === 4002) {
          return this._fatal(ev.code === 4002 ? 'this room was opened again in another tab' : `the server refused this member (${ev.code}${ev.reason ? ': ' + ev.reason : ''})`);
        }
        this._reconnect();
      };
    });
  }

  _fatal(msg) {
    this._closed = true;
    this._setState('closed', msg);
  }

  async _reconnect() {
    this._setState('reconnecting');
    let delay = 250;
    while (!this._closed) {
      await sleep(delay / 2 + Math.random() * delay / 2);
      if (this._closed) return;
      try {
        await this._connect(false);
        return;
      } catch { /* retry */ }
      delay = Math.min(delay * 2, 5000);
    }
  }

  /** Leaves the room for good (nothing more is owed to this member).
   * Resolves once the server has closed the connection (at most 2 s). */
  leave() {
    this._closed = true;
    const ws = this._ws;
    this._setState('closed');
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => { ws.close(1000); resolve(); }, 2000);
      ws.addEventListener('close', () => { clearTimeout(t); resolve(); }, { once: true });
      ws.send(JSON.stringify({ t: 'leave' })); // the server answers by closing
    });
  }

  _send(obj) {
    const ws = this._ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) throw new Error('not connected to the server');
    ws.send(JSON.stringify(obj));
  }

  /** Queues an ack; flushed in batches (at once when 64 wait, else on the next turn). */
  _ack(item) {
    this._acks.push(item);
    if (this._acks.length >= 64) this._flushAcks();
    else if (!this._ackTimer) this._ackTimer = setTimeout(() => { this._ackTimer = 0; this._flushAcks(); }, 0);
  }

  _flushAcks() {
    while (this._acks.length) {
      const ids = this._acks.splice(0, P.MAX_ACK_IDS);
      try { this._send({ t: 'ack', ids }); } catch { this._acks.length = 0; } // unacked items come again
    }
  }

  // ---- inbound -----------------------------------------------------------

  /** Handles inbound frames one at a time, in order; acks in batches. */
  async _pump() {
    if (this._pumping) return;
    this._pumping = true;
    try {
      while (this._inbox.length) {
        const data = this._inbox.shift();
        try {
          if (typeof data === 'string') await this._onText(data);
          else await this._onChunk(data);
        } catch (e) {
          console.warn('cloakroom: dropping a message:', e.message);
        }
      }
    } finally {
      this._pumping = false;
    }
  }

  async _onText(text) {
    let m;
    try { m = JSON.parse(text); } catch { return; }
    if (!m || typeof m !== 'object') return;
    switch (m.t) {
      case 'welcome': return this._welcome(m);
      case 'presence': return this._presence(m);
      case 'msg': return this._envelope(m);
      case 'file_ok': case 'progress': case 'delivered': case 'undeliverable':
        return this._sendEvent(m);
      case 'error':
        if (m.file) return this._sendEvent(m);
        if (FATAL_CODES.has(m.code)) this._fatal(ERROR_TEXT[m.code] || m.error);
        else console.warn('cloakroom: server error:', m.code, m.error);
        return;
      case 'signal':
        return; // peer-to-peer is not in the browser client yet: senders fall back to the relay
      case 'turn':
        if (Array.isArray(m.ice)) this.ice = m.ice;
        return;
    }
  }

  async _verifiedMember(id, pub64, mac64, online) {
    if (id === this.id || !C.validUUID(id)) return null;
    let pub, mac;
    try { pub = C.unb64u(pub64); mac = C.unb64u(mac64); } catch { return null; }
    if (!(await this.keys.verifyAnnounce(id, pub, mac))) {
      console.warn('cloakroom: ignoring a member whose announcement does not verify (server misbehaving?)');
      return null;
    }
    const old = this.members.get(id);
    if (old && C.toHex(old.pub) !== C.toHex(pub)) return null; // a member's key never changes
    const mem = old ?? { id, pub, online };
    mem.online = online;
    this.members.set(id, mem);
    return mem;
  }

  async _welcome(m) {
    this.ttl = m.ttl || 0;
    if (Array.isArray(m.ice)) this.ice = m.ice;
    const listed = new Set();
    for (const mi of Array.isArray(m.members) ? m.members : []) {
      listed.add(mi.member);
      await this._verifiedMember(mi.member, mi.pub, mi.mac, !!mi.online);
    }
    for (const id of [...this.members.keys()]) if (!listed.has(id)) this.members.delete(id);
    this.emit('members');
    const w = this._welcomed;
    this._welcomed = null;
    w?.();
  }

  async _presence(m) {
    const mem = this.members.get(m.member);
    switch (m.event) {
      case 'join': await this._verifiedMember(m.member, m.pub, m.mac, true); break;
      case 'online': case 'offline': if (mem) mem.online = m.event === 'online'; break;
      case 'leave': this.members.delete(m.member); break;
      default: return;
    }
    for (const s of this._sends.values()) s.presence?.(m.member, m.event);
    this.emit('members');
  }

  async _envelope(m) {
    const item = Number(m.id);
    const ack = () => { if (item > 0) this._ack(item); };
    if (!this.members.has(m.from)) return ack(); // the server cannot add members
    let sealed;
    try { sealed = C.unb64u(m.data); } catch { return ack(); }
    if (m.file) {
      await this._manifest(m.from, m.file, Number(m.chunks), sealed).catch((e) => console.warn('cloakroom: file manifest dropped:', e.message));
      return ack();
    }
    let opened;
    try {
      opened = await this.keys.openEnvelope({ sender: m.from }, sealed);
    } catch {
      console.warn('cloakroom: an envelope failed to open; dropped');
      return ack();
    }
    const idHex = C.toHex(opened.id);
    if (!this._seen.has(idHex)) {
      this._seen.add(idHex);
      let body;
      try { body = JSON.parse(C.fromUTF8(opened.plaintext)); } catch { body = null; }
      if (body?.kind === 'chat' && typeof body.text === 'string') {
        this.emit('chat', { id: idHex, from: m.from, text: body.text, mine: false, time: Date.now() });
      }
    }
    ack();
  }

  // ---- chat --------------------------------------------------------------

  /** Seals text and hands it to the relay, owed to every known member. */
  async sendChat(text) {
    if (C.utf8(text).length > C.MAX_CHAT_BYTES) throw new Error(`a message is limited to ${C.MAX_CHAT_BYTES} bytes`);
    const { id, sealed } = await this.keys.sealEnvelope({ sender: this.id }, C.chatPlaintext(text));
    this._send({ t: 'msg', data: C.b64u(sealed) });
    const idHex = C.toHex(id);
    this._seen.add(idHex);
    this.emit('chat', { id: idHex, from: this.id, text, mine: true, time: Date.now() });
  }

  // ---- receiving files ---------------------------------------------------

  async _manifest(from, file, chunks, sealed) {
    const man = await this.keys.openManifest({ sender: from, file, chunks }, sealed);
    const old = this._recvs.get(man.file);
    if (old) return; // delivered again after a reconnect: keep the partial state
    const t = new Transfer({ id: man.file, name: safeName(man.name), type: man.type, size: man.size, chunks: man.chunks, direction: 'recv', peer: from, state: 'receiving' });
    const r = { man, from, t, have: new Uint8Array(man.chunks), got: 0, written: 0, sink: null, cipher: null, done: false, failed: false };
    this._recvs.set(man.file, r);
    try {
      r.cipher = await C.newChunkCipher(C.unb64u(man.key), this.keys.roomID, from, C.uuidBytes(man.file), man.chunks, man.size);
      r.sink = await this.store.create(man.file, man.size);
      t.storage = r.sink.kind;
    } catch (e) {
      this._failRecv(r, e.message);
      return;
    }
    this.emit('transfer', { transfer: t });
  }

  /** Parses a chunk frame as it arrives and, when its file is known, starts
   * decrypting it at once, so decryption overlaps the handling of the
   * frames before it (the pump still takes them in order). */
  _preopen(buf) {
    const e = { d: null, err: null, opening: null };
    try { e.d = P.parseChunkDown(new Uint8Array(buf)); } catch (x) { e.err = x; return e; }
    const r = this._recvs.get(C.uuidString(e.d.file));
    const d = e.d;
    if (r && r.cipher && !r.failed && !r.done && !r.have[d.index] && C.uuidString(d.sender) === r.from && d.count === r.man.chunks) {
      e.opening = r.cipher.open(d.index, d.final, d.sealed);
      e.opening.catch(() => {});
    }
    return e;
  }

  async _onChunk(e) {
    if (e.err) { console.warn('cloakroom: malformed frame from the server:', e.err.message); return; }
    const d = e.d;
    const r = this._recvs.get(C.uuidString(d.file));
    if (!r || r.failed || r.done || !r.sink) return this._ack(d.item);
    if (C.uuidString(d.sender) !== r.from || d.count !== r.man.chunks) {
      this._ack(d.item);
      return this._failRecv(r, `chunk ${d.index}: routing does not match the manifest`);
    }
    if (r.have[d.index]) return this._ack(d.item); // delivered again after a reconnect
    let plain;
    try {
      plain = await (e.opening ?? r.cipher.open(d.index, d.final, d.sealed));
    } catch {
      this._ack(d.item);
      return this._failRecv(r, `chunk ${d.index} failed to decrypt (tampered?)`);
    }
    const cs = r.man.chunkSize;
    const want = d.index === r.man.chunks - 1 ? r.man.size - d.index * cs : cs;
    if (plain.length !== cs || plain.subarray(want).some((x) => x !== 0)) {
      this._ack(d.item);
      return this._failRecv(r, `chunk ${d.index}: ${plain.length} bytes or bad padding`);
    }
    // The write runs while the next chunks are opened; the item is acked
    // once its bytes are written (docs/PROTOCOL.md: "verified and written").
    r.have[d.index] = 1;
    r.got++;
    const last = r.got === r.man.chunks;
    r.sink.write(d.index * cs, plain.subarray(0, want)).then(() => {
      this._ack(d.item);
      r.written++;
      r.t.bytes += want;
      if (!last) this.emit('transfer', { transfer: r.t });
    }, (e) => {
      this._ack(d.item);
      this._failRecv(r, 'could not write the file: ' + e.message);
    });
    if (last) await this._finishRecv(r);
  }

  async _finishRecv(r) {
    try {
      const sum = await r.sink.finish(); // after every write, in order
      if (r.failed) return;
      if (sum !== r.man.sha256) return this._failRecv(r, `SHA-256 mismatch: got ${sum.slice(0, 12)}…, the sender says ${r.man.sha256.slice(0, 12)}…`);
      const f = await r.sink.file();
      r.done = true;
      r.t.sha256 = sum;
      r.t.file = new File([f], safeName(r.man.name), { type: r.man.type || 'application/octet-stream' });
      r.t.state = 'done';
      r.t.finished = performance.now();
      this.emit('transfer', { transfer: r.t });
    } catch (e) {
      this._failRecv(r, e.message);
    }
  }

  _failRecv(r, msg) {
    if (r.failed) return;
    r.failed = true;
    r.t.state = 'failed';
    r.t.error = msg;
    r.t.finished = performance.now();
    r.sink?.abort();
    this.emit('transfer', { transfer: r.t });
  }

  // ---- sending files -----------------------------------------------------

  _sendEvent(m) {
    const s = this._sends.get(m.file);
    if (s) s.event(m);
  }

  _failSends(msg) {
    for (const s of this._sends.values()) s.fail(msg);
  }

  /** Sends a File to every member online now, through the relay. Resolves
   * with the transfer once every recipient has it or was reported lost. */
  async sendFile(file) {
    const t = new Transfer({ name: safeName(file.name), type: file.type || 'application/octet-stream', size: file.size, direction: 'send', state: 'hashing', file });
    t.id = C.newUUID();
    this.emit('transfer', { transfer: t });
    let s;
    try {
      const hash = new C.Sha256();
      for (let off = 0; off < file.size; off += 4 << 20) {
        hash.update(new Uint8Array(await file.slice(off, Math.min(file.size, off + (4 << 20))).arrayBuffer()));
      }
      t.sha256 = C.toHex(hash.digest());
      const key = C.randomBytes(32);
      const man = {
        file: t.id, name: t.name, type: t.type, size: file.size, chunkSize: P.CHUNK_SIZE,
        chunks: C.chunkCount(file.size, P.CHUNK_SIZE), sha256: t.sha256, key: C.b64u(key),
      };
      if (!man.chunks || man.chunks > P.MAX_CHUNKS) throw new Error('the file is too large');
      t.chunks = man.chunks;
      const sealed = await this.keys.sealManifest(this.id, man);
      const recipients = await this._waitForMembers(t);
      s = this._newSend(t);
      this._send({ t: 'file', file: man.file, chunks: man.chunks, data: C.b64u(sealed), recipients });
      const got = await s.fileOK;
      if (got.length === 0) throw new Error('nobody else is online');
      for (const r of got) t.recipients.set(r, { acked: 0, state: 'sending' });
      t.state = 'sending';
      t.peer = got.join(',');
      t.started = performance.now();
      this.emit('transfer', { transfer: t });
      await this._upload(t, s, file, man, key);
      t.state = 'delivering';
      this.emit('transfer', { transfer: t });
      await s.allDone;
      const lost = [...t.recipients.values()].filter((r) => r.state !== 'delivered');
      t.finished = performance.now();
      if (lost.length) throw new Error(`${lost.length} of ${t.recipients.size} members did not get it: ${lost[0].error || 'lost'}`);
      t.bytes = t.size;
      t.state = 'done';
      this.emit('transfer', { transfer: t });
      return t;
    } catch (e) {
      t.state = 'failed';
      t.error = e.message;
      t.finished = t.finished || performance.now();
      this.emit('transfer', { transfer: t });
      throw e;
    } finally {
      if (s) this._sends.delete(t.id);
    }
  }

  async _waitForMembers(t) {
    if (this.onlineMembers.length === 0) {
      t.state = 'waiting';
      this.emit('transfer', { transfer: t });
      while (this.onlineMembers.length === 0) {
        if (this._closed) throw new Error('left the room');
        await new Promise((r) => this.addEventListener('members', r, { once: true }));
      }
    }
    return this.onlineMembers;
  }

  _newSend(t) {
    const s = { failed: '' };
    let okResolve, okReject, doneResolve, doneReject;
    s.fileOK = new Promise((res, rej) => { okResolve = res; okReject = rej; });
    s.allDone = new Promise((res, rej) => { doneResolve = res; doneReject = rej; });
    s.fileOK.catch(() => {}); s.allDone.catch(() => {});
    const checkDone = () => {
      if (t.recipients.size && [...t.recipients.values()].every((r) => r.state !== 'sending')) doneResolve();
    };
    s.fail = (msg) => {
      if (s.failed) return;
      s.failed = msg;
      okReject(new Error(msg)); doneReject(new Error(msg));
    };
    s.event = (m) => {
      const r = t.recipients.get(m.member);
      switch (m.t) {
        case 'file_ok': okResolve(Array.isArray(m.recipients) ? m.recipients.filter((x) => this.members.has(x)) : []); return;
        case 'error': s.fail(ERROR_TEXT[m.code] || m.error || m.code); return;
        case 'progress': if (r) r.acked = Number(m.acked) || 0; break;
        case 'delivered': if (r) { r.state = 'delivered'; r.acked = t.chunks; } break;
        case 'undeliverable': if (r) { r.state = 'lost'; r.error = m.error || 'undeliverable'; } break;
      }
      this.emit('transfer', { transfer: t });
      checkDone();
    };
    s.presence = (member, event) => {
      const r = t.recipients.get(member);
      if (r && r.state === 'sending' && event === 'leave') { r.state = 'lost'; r.error = 'left the room'; checkDone(); }
    };
    this._sends.set(t.id, s);
    return s;
  }

  async _upload(t, s, file, man, key) {
    const fid = C.uuidBytes(man.file);
    const cipher = await C.newChunkCipher(key, this.keys.roomID, this.id, fid, man.chunks, man.size);
    const ws = this._ws;
    const cs = man.chunkSize;
    let lastEmit = 0;
    for (let first = 0; first < man.chunks; first += READ_BLOCK) {
      const last = Math.min(man.chunks, first + READ_BLOCK);
      const block = new Uint8Array(await file.slice(first * cs, Math.min(man.size, last * cs)).arrayBuffer());
      // Seal the block's chunks concurrently, then send them in order.
      const sealed = await Promise.all(Array.from({ length: last - first }, (_, k) => {
        const plain = new Uint8Array(cs); // every chunk sealed at full size: the last one zero-padded
        plain.set(block.subarray(k * cs, Math.min(block.length, (k + 1) * cs)));
        return cipher.seal(first + k, plain);
      }));
      for (let k = 0; k < sealed.length; k++) {
        if (s.failed) throw new Error(s.failed);
        if (this._ws !== ws || ws.readyState !== WebSocket.OPEN) throw new Error('the connection to the server was lost');
        ws.send(P.chunkUpFrame(fid, first + k, man.chunks, sealed[k]));
        t.bytes = Math.min(man.size, (first + k + 1) * cs);
      }
      while (ws.bufferedAmount > SEND_HIGH_WATER && !s.failed && ws.readyState === WebSocket.OPEN) await sleep(4);
      if (performance.now() - lastEmit > 100) { lastEmit = performance.now(); this.emit('transfer', { transfer: t }); }
    }
    // What the socket still buffers has not left yet.
    while (ws.bufferedAmount > 0 && !s.failed && ws.readyState === WebSocket.OPEN) await sleep(10);
    if (s.failed) throw new Error(s.failed);
  }
}

export function defaultWSURL() {
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
}
