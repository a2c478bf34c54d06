// The browser member of a room: joins over the WebSocket (docs/PROTOCOL.md),
// keeps the member list with verified announcements, sends and receives chat
// envelopes, and moves files with the same sealed manifests and chunks as the
// Go client: over a peer-to-peer data channel (direct, or relayed by the
// room's TURN server; p2p.js) or through the server's relay store — the
// fallback ladder direct -> TURN -> relay of transport 'auto'.
//
// Events (CustomEvent, detail shown):
//   state     {state: 'connecting'|'connected'|'reconnecting'|'closed', error}
//   members   {}                      (read room.members)
//   chat      {id, from, text, mine, time}
//   transfer  {transfer}              (created, progressed, finished or failed)
import * as C from './crypto.js';
import * as P from './protocol.js';
import { openStore } from './store.js';
import { P2P, ladder, STALL_MS, ICE_REFRESH_BEFORE_S } from './p2p.js';

const SEND_HIGH_WATER = 8 << 20; // pause uploading while the socket buffers this much
const READ_BLOCK = 64;            // chunks read from the File (and sealed) at a time
const TRANSPORTS = ['auto', 'p2p', 'turn', 'relay'];
const ICE_TIMEOUT_MS = 10000;     // each peer-to-peer rung (as the Go client)
const OFFLINE_GRACE_MS = 20000;   // a relay recipient gone offline mid-transfer, before it counts as lost
const VANISH_MS = 15000;          // a reception whose peer-to-peer sender vanished waits this long for a new path
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
  static async join(secret, { wsURL, transport = 'auto' } = {}) {
    if (!TRANSPORTS.includes(transport)) throw new Error(`transport ${JSON.stringify(transport)}: want one of ${TRANSPORTS.join(', ')}`);
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
    this.iceExpires = 0;
    this.p2p = new P2P(this);
    this._iceWaiters = [];
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
    this.p2p.closeAll();
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
          else if (data.dc) await this._onDC(data);
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
        // A signal (a late candidate or bye) to a member that just left: its sessions end by themselves.
        else if (m.code !== 'no_such_member') console.warn('cloakroom: server error:', m.code, m.error);
        return;
      case 'signal':
        return this.p2p.onSignal(m); // opened and handled in order per member, off this pump
      case 'turn':
        this._setICE(m);
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
    this._setICE(m);
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
    if (m.event === 'offline' || m.event === 'leave') {
      this.p2p.memberGone(m.member);
      // A reception whose peer-to-peer sender already vanished: no new path is coming.
      for (const r of this._recvs.values()) {
        if (r.from === m.member && r.vanishTimer) this._failRecv(r, r.vanishMsg + '; the sender went offline', true);
      }
    }
    this.emit('members');
  }

  _setICE(m) {
    if (!Array.isArray(m.ice)) return;
    this.ice = m.ice;
    this.iceExpires = Number(m.expires) || 0;
    const ws = this._iceWaiters;
    this._iceWaiters = [];
    for (const w of ws) w();
  }

  /** Asks the server for fresh TURN credentials when the current ones are
   * close to expiry (a relayed session cannot outlive them), waiting a
   * little for the answer. */
  async freshICE() {
    if (!this.ice.length || !this.iceExpires || this.iceExpires - Date.now() / 1000 > ICE_REFRESH_BEFORE_S) return;
    try { this._send({ t: 'turn' }); } catch { return; }
    await Promise.race([new Promise((r) => this._iceWaiters.push(r)), sleep(5000)]);
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

  /** A manifest from the relay. */
  async _manifest(from, file, chunks, sealed) {
    const man = await this.keys.openManifest({ sender: from, file, chunks }, sealed);
    await this._startRecv(man, from, 'relay', null);
  }

  /** Prepares the reception of a file announced by from, through the relay
   * (peer null) or a peer-to-peer session. A file already being received
   * keeps its partial state: chunks from any path verify the same way, so a
   * sender that falls back to the relay mid-transfer resumes it. */
  async _startRecv(man, from, path, peer) {
    const old = this._recvs.get(man.file);
    if (old) {
      if (old.from !== from) throw new Error(`file id ${man.file} reused by another member`);
      if (!(old.failed && old.vanished)) {
        clearTimeout(old.vanishTimer);
        old.vanishTimer = 0;
        old.peer = peer;
        old.path = path;
        old.t.path = path;
        if (!old.failed && !old.done) old.t.error = '';
        this.emit('transfer', { transfer: old.t });
        if (peer && (old.done || old.failed)) this._notifyDone(old, peer, old.failed, 'already handled');
        return;
      }
      this._recvs.delete(man.file); // its sender vanished earlier; start again
    }
    const t = new Transfer({ id: man.file, name: safeName(man.name), type: man.type, size: man.size, chunks: man.chunks, direction: 'recv', peer: from, state: 'receiving', path });
    const r = { man, from, t, path, peer, have: new Uint8Array(man.chunks), got: 0, written: 0, sink: null, cipher: null, done: false, failed: false, vanished: false, vanishTimer: 0, vanishMsg: '' };
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

  /** Starts decrypting a chunk as it arrives when its file is known, so
   * decryption overlaps the handling of the chunks before it. */
  _preopenChunk(d, sender) {
    const r = this._recvs.get(C.uuidString(d.file));
    if (r && r.cipher && !r.failed && !r.done && !r.have[d.index] && sender === r.from && d.count === r.man.chunks) {
      const opening = r.cipher.open(d.index, d.final, d.sealed);
      opening.catch(() => {});
      return opening;
    }
    return null;
  }

  /** Parses a relay chunk frame as it arrives and starts opening it (the
   * pump still takes frames in order). */
  _preopen(buf) {
    const e = { d: null, err: null, opening: null };
    try { e.d = P.parseChunkDown(new Uint8Array(buf)); } catch (x) { e.err = x; return e; }
    e.opening = this._preopenChunk(e.d, C.uuidString(e.d.sender));
    return e;
  }

  async _onChunk(e) {
    if (e.err) { console.warn('cloakroom: malformed frame from the server:', e.err.message); return; }
    const d = e.d;
    await this._takeChunk(this._recvs.get(C.uuidString(d.file)), d, C.uuidString(d.sender), e.opening, () => this._ack(d.item));
  }

  /** Verifies and writes one chunk of r (from any path); after() runs once
   * the chunk is handled — written, a duplicate, or refused (the relay acks
   * its item then). */
  async _takeChunk(r, d, sender, opening, after) {
    if (!r || r.failed || r.done || !r.sink) return after();
    if (sender !== r.from || d.count !== r.man.chunks) {
      after();
      return this._failRecv(r, `chunk ${d.index}: routing does not match the manifest`);
    }
    if (r.have[d.index]) return after(); // delivered again (a reconnect, or a resumed transfer)
    let plain;
    try {
      plain = await (opening ?? r.cipher.open(d.index, d.final, d.sealed));
    } catch {
      after();
      return this._failRecv(r, `chunk ${d.index} failed to decrypt (tampered?)`);
    }
    if (r.failed || r.have[d.index]) return after();
    const cs = r.man.chunkSize;
    const want = d.index === r.man.chunks - 1 ? r.man.size - d.index * cs : cs;
    if (plain.length !== cs || plain.subarray(want).some((x) => x !== 0)) {
      after();
      return this._failRecv(r, `chunk ${d.index}: ${plain.length} bytes or bad padding`);
    }
    // The write runs while the next chunks are opened; a relay item is
    // acked once its bytes are written (docs/PROTOCOL.md: "verified and written").
    r.have[d.index] = 1;
    r.got++;
    const last = r.got === r.man.chunks;
    r.sink.write(d.index * cs, plain.subarray(0, want)).then(() => {
      after();
      r.written++;
      r.t.bytes += want;
      if (!last) {
        // A peer-to-peer sender hears of progress every 64 chunks (as from Go).
        if (r.peer && r.written % 64 === 0) r.peer.notify({ kind: P.DC_PROGRESS, file: C.uuidBytes(r.man.file), chunks: r.written });
        this.emit('transfer', { transfer: r.t });
      }
    }, (e) => {
      after();
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
      clearTimeout(r.vanishTimer);
      r.t.sha256 = sum;
      r.t.file = new File([f], safeName(r.man.name), { type: r.man.type || 'application/octet-stream' });
      r.t.state = 'done';
      r.t.error = '';
      r.t.finished = performance.now();
      if (r.peer) this._notifyDone(r, r.peer, false, '');
      this.emit('transfer', { transfer: r.t });
    } catch (e) {
      this._failRecv(r, e.message);
    }
  }

  _failRecv(r, msg, vanished = false) {
    if (r.failed) return;
    r.failed = true;
    r.vanished = vanished;
    clearTimeout(r.vanishTimer);
    r.vanishTimer = 0;
    r.t.state = 'failed';
    r.t.error = msg;
    r.t.finished = performance.now();
    r.sink?.abort();
    if (r.peer && !vanished) this._notifyDone(r, r.peer, true, msg);
    this.emit('transfer', { transfer: r.t });
  }

  _notifyDone(r, peer, failed, reason) {
    peer.notify({ kind: P.DC_DONE, file: C.uuidBytes(r.man.file), failed, reason: String(reason).slice(0, 200) });
  }

  // ---- peer-to-peer receptions --------------------------------------------

  /** An answering session (p2p.js): its messages come here once both keys
   * are confirmed. */
  onOffer(peer) {
    peer.handler = (b) => this._dcIn(peer, b);
    peer.onend = (err) => this._peerEnded(peer, err);
  }

  /** A message from a peer-to-peer sender: a manifest or a chunk frame. Both
   * go through the pump, in order, like relay frames. */
  _dcIn(peer, b) {
    if (b[0] === P.FRAME_VERSION) {
      let d;
      try { d = P.parseChunkUp(b); } catch (e) { return peer.fail(new Error('malformed chunk from the sender: ' + e.message)); }
      this._inbox.push({ dc: true, peer, d, opening: this._preopenChunk(d, peer.member) });
    } else {
      let m;
      try { m = P.parseDC(b); } catch { m = null; }
      if (!m || m.kind !== P.DC_MANIFEST) return peer.fail(new Error('unexpected message from the sender'));
      this._inbox.push({ dc: true, peer, manifest: m });
    }
    if (!this._pumping) this._pump();
  }

  async _onDC(e) {
    const { peer } = e;
    if (e.manifest) {
      const m = e.manifest;
      let man;
      try {
        man = await this.keys.openManifest({ sender: peer.member, file: C.uuidString(m.file), chunks: m.chunks }, m.sealed);
      } catch (x) {
        return peer.fail(new Error('the manifest failed to open: ' + x.message));
      }
      try {
        await this._startRecv(man, peer.member, peer.path, peer);
      } catch (x) {
        peer.notify({ kind: P.DC_DONE, file: m.file, failed: true, reason: x.message.slice(0, 200) });
      }
      return;
    }
    const r = this._recvs.get(C.uuidString(e.d.file));
    if (r && r.peer !== peer) return; // not (or no longer) this session's file
    await this._takeChunk(r, e.d, peer.member, e.opening, () => {});
  }

  /** A peer-to-peer session ended: a reception it carried that is not
   * complete waits a little for the sender to resume it (through the relay
   * or a new session), then fails with a clear message. */
  _peerEnded(peer, err) {
    for (const r of this._recvs.values()) {
      if (r.peer !== peer || r.done || r.failed) continue;
      r.peer = null;
      r.vanishMsg = `the ${peer.path} connection to the sender was lost mid-transfer (${err.message})`;
      r.t.error = r.vanishMsg + '; waiting for the sender to resume';
      this.emit('transfer', { transfer: r.t });
      if (!this.members.get(r.from)?.online) { this._failRecv(r, r.vanishMsg + '; the sender is offline', true); continue; }
      r.vanishTimer = setTimeout(() => { r.vanishTimer = 0; this._failRecv(r, r.vanishMsg + '; it did not resume', true); }, VANISH_MS);
    }
  }

  // ---- sending files -----------------------------------------------------

  _sendEvent(m) {
    const s = this._sends.get(m.file);
    if (s) s.event(m);
  }

  _failSends(msg) {
    for (const s of this._sends.values()) s.fail(msg);
  }

  /** Sends a File to every member online now: per recipient over the best
   * path that connects (transport 'auto': direct data channel, then one
   * relayed by TURN, then the server's relay store; 'p2p', 'turn' and
   * 'relay' force one). Resolves with the transfer once every recipient has
   * it or was reported lost. */
  async sendFile(file) {
    const t = new Transfer({ name: safeName(file.name), type: file.type || 'application/octet-stream', size: file.size, direction: 'send', state: 'hashing', file, path: '' });
    t.id = C.newUUID();
    this.emit('transfer', { transfer: t });
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
      const job = { t, file, man, key, sealed };
      for (const r of recipients) t.recipients.set(r, { state: 'connecting', path: '', bytes: 0, error: '' });
      t.state = 'sending';
      t.peer = recipients.join(',');
      t.started = performance.now();
      this._sendProgress(t);
      let relayTo = recipients;
      const p2p = [];
      if (this.transport !== 'relay') {
        // Each recipient climbs the ladder on its own; the ones nothing
        // connected to share one relay upload, started once all have settled.
        const outcomes = recipients.map((m) => new Promise((resolve) => p2p.push(this._sendP2P(job, m, resolve).catch((e) => {
          resolve(null); // never leave the send waiting on an outcome
          this._lose(t, [m], e.message);
        }))));
        relayTo = (await Promise.all(outcomes)).filter(Boolean);
      }
      if (relayTo.length) await this._sendRelay(job, relayTo).catch((e) => this._lose(t, relayTo, e.message));
      await Promise.all(p2p);
      t.finished = performance.now();
      const lost = [...t.recipients.values()].filter((r) => r.state !== 'delivered');
      if (lost.length) throw new Error(`${lost.length} of ${t.recipients.size} members did not get it: ${lost[0].error || 'lost'}`);
      t.bytes = t.size;
      t.state = 'done';
      this._sendProgress(t);
      return t;
    } catch (e) {
      t.state = 'failed';
      t.error = e.message;
      t.finished = t.finished || performance.now();
      this.emit('transfer', { transfer: t });
      throw e;
    }
  }

  /** Recomputes a send's path (the paths its recipients took) and bytes
   * (the slowest recipient's), then tells the UI. */
  _sendProgress(t) {
    const live = [...t.recipients.values()].filter((r) => r.state !== 'lost');
    const paths = [...new Set([...t.recipients.values()].map((r) => r.path).filter(Boolean))];
    t.path = paths.join(' + ') || (this.transport === 'relay' ? 'relay' : 'connecting');
    if (t.state !== 'done') t.bytes = live.length ? Math.min(...live.map((r) => r.bytes)) : 0;
    this.emit('transfer', { transfer: t });
  }

  /** The first path is up: the speed shown counts from here, not from
   * before connecting. */
  _flowing(t) {
    if (t.flowing) return;
    t.flowing = true;
    t.started = performance.now();
  }

  _lose(t, members, msg) {
    for (const m of members) {
      const r = t.recipients.get(m);
      if (r && r.state !== 'delivered' && r.state !== 'lost') { r.state = 'lost'; r.error = msg; }
    }
    this._sendProgress(t);
  }

  /** One recipient's peer-to-peer rungs. outcome(member) once, as soon as
   * it is known: null once connected (or failed for good), the member when
   * the relay store must take over. */
  async _sendP2P(job, member, outcome) {
    const { t } = job;
    const rec = t.recipients.get(member);
    const errs = [];
    for (const mode of ladder(this.transport)) {
      let p = null;
      try {
        p = await this.p2p.offer(member, mode);
        await p.waitReady(ICE_TIMEOUT_MS);
      } catch (e) {
        p?.bye();
        errs.push(e.message);
        if (this._closed) break;
        continue;
      }
      outcome(null);
      this._flowing(t);
      rec.state = 'sending';
      rec.path = p.path;
      rec.relayProtocol = p.relayProtocol;
      this._sendProgress(t);
      try {
        await this._streamP2P(job, p, rec);
        rec.state = 'delivered';
        rec.bytes = t.size;
        p.bye();
        this._sendProgress(t);
        return;
      } catch (e) {
        p.bye();
        return this._p2pLost(job, member, rec, p, e);
      }
    }
    if (this.transport === 'auto' && !this._closed) {
      rec.state = 'relay';
      return outcome(member);
    }
    outcome(null);
    this._lose(t, [member], `no ${this.transport === 'turn' ? 'TURN' : 'peer-to-peer'} connection: ${errs.join('; ')}`);
  }

  /** A peer-to-peer session broke mid-transfer (docs/DECISIONS.md): with
   * transport 'auto' and the member still online, the file goes again
   * through the relay under the same id (the receiver keeps the chunks it
   * has and writes only the missing ones); otherwise the recipient is
   * reported lost with the reason. */
  async _p2pLost(job, member, rec, p, err) {
    const { t } = job;
    const why = err.receiver ? err.message : `the ${p.path} connection was lost mid-transfer: ${err.message}`;
    if (!err.receiver && this.transport === 'auto' && !this._closed) {
      await sleep(1000); // let presence settle: a member that vanished is reported offline by the server
      if (this.members.get(member)?.online && !this._sends.has(t.id)) {
        rec.path = 'relay';
        rec.state = 'sending';
        rec.note = why + '; resumed through the relay';
        this._sendProgress(t);
        try {
          await this._sendRelay(job, [member]);
        } catch (e) {
          this._lose(t, [member], `${why}; the relay did not take over either: ${e.message}`);
        }
        return;
      }
      if (!this.members.get(member)?.online) return this._lose(t, [member], why + ' (the member went offline)');
    }
    this._lose(t, [member], why);
  }

  /** Streams the file over a confirmed session: the manifest, every chunk
   * (the same sealed frames as the relay's), then waits for the receiver's
   * verdict. Stalls (no word from the receiver) fail the session. */
  async _streamP2P(job, p, rec) {
    const { t, file, man, key, sealed } = job;
    const fid = C.uuidBytes(man.file);
    let verdict;
    const done = new Promise((resolve, reject) => { verdict = { resolve, reject }; });
    done.catch(() => {});
    p.ended.then((e) => verdict.reject(e));
    p.handler = (b) => {
      let m;
      try { m = P.parseDC(b); } catch { m = null; }
      if (!m || (m.kind !== P.DC_PROGRESS && m.kind !== P.DC_DONE) || C.toHex(m.file) !== C.toHex(fid)) {
        p.fail(new Error('unexpected message from the receiver'));
        return;
      }
      if (m.kind === P.DC_PROGRESS) {
        rec.bytes = Math.min(m.chunks * man.chunkSize, man.size);
        this._sendProgress(t);
      } else if (m.failed) {
        const e = new Error('the receiver reports: ' + m.reason);
        e.receiver = true;
        verdict.reject(e);
      } else {
        verdict.resolve();
      }
    };
    await p.send(P.dcMessage({ kind: P.DC_MANIFEST, file: fid, chunks: man.chunks, sealed }));
    const cipher = await C.newChunkCipher(key, this.keys.roomID, this.id, fid, man.chunks, man.size);
    let failedEarly = null;
    done.catch((e) => { failedEarly = e; });
    await this._forEachSealed(file, man, cipher, async (i, sc) => {
      if (failedEarly) throw failedEarly;
      await p.send(P.chunkUpFrame(fid, i, man.chunks, sc));
    });
    const watch = setInterval(() => {
      if (performance.now() - p._activity > STALL_MS) p.fail(new Error(`no word from the receiver for ${STALL_MS / 1000} s`));
    }, 1000);
    try {
      await done;
    } finally {
      clearInterval(watch);
    }
  }

  /** Reads the file in blocks, seals each block's chunks concurrently (the
   * next block while this one is sent) and calls send(index, sealed) in
   * order. Every chunk is sealed at full size: the last one zero-padded. */
  async _forEachSealed(file, man, cipher, send) {
    const cs = man.chunkSize;
    const sealBlock = async (first) => {
      const last = Math.min(man.chunks, first + READ_BLOCK);
      const block = new Uint8Array(await file.slice(first * cs, Math.min(man.size, last * cs)).arrayBuffer());
      return Promise.all(Array.from({ length: last - first }, (_, k) => {
        const plain = new Uint8Array(cs);
        plain.set(block.subarray(k * cs, Math.min(block.length, (k + 1) * cs)));
        return cipher.seal(first + k, plain);
      }));
    };
    let next = sealBlock(0);
    for (let first = 0; first < man.chunks; first += READ_BLOCK) {
      const sealed = await next;
      next = first + READ_BLOCK < man.chunks ? sealBlock(first + READ_BLOCK) : null;
      next?.catch(() => {});
      for (let k = 0; k < sealed.length; k++) await send(first + k, sealed[k]);
    }
  }

  /** Sends the file through the server's relay store to recipients. */
  async _sendRelay(job, recipients) {
    const { t, file, man, key, sealed } = job;
    const s = this._newSend(t);
    try {
      this._send({ t: 'file', file: man.file, chunks: man.chunks, data: C.b64u(sealed), recipients });
      const got = await s.fileOK;
      const missed = recipients.filter((r) => !got.includes(r));
      if (missed.length) this._lose(t, missed, 'offline when the relay upload started');
      if (got.length === 0) throw new Error('nobody else is online');
      this._flowing(t);
      for (const m of got) {
        const r = t.recipients.get(m);
        if (!r) continue;
        Object.assign(r, { state: 'sending', path: 'relay', bytes: 0, acked: 0 });
        s.members.add(m);
      }
      this._sendProgress(t);
      await this._upload(t, s, file, man, key);
      t.state = 'delivering';
      this._sendProgress(t);
      await s.allDone;
      if (t.state === 'delivering') t.state = 'sending';
    } finally {
      clearTimeout(s.graceTimer);
      for (const timer of s.offline.values()) clearTimeout(timer);
      this._sends.delete(t.id);
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

  /** The state of one relay upload of t: the relay recipients (s.members)
   * and the server's events about them. */
  _newSend(t) {
    const s = { failed: '', members: new Set(), offline: new Map() };
    let okResolve, okReject, doneResolve, doneReject;
    s.fileOK = new Promise((res, rej) => { okResolve = res; okReject = rej; });
    s.allDone = new Promise((res, rej) => { doneResolve = res; doneReject = rej; });
    s.fileOK.catch(() => {}); s.allDone.catch(() => {});
    const rec = (m) => (s.members.has(m) ? t.recipients.get(m) : null);
    const checkDone = () => {
      if (s.members.size && [...s.members].every((m) => t.recipients.get(m).state !== 'sending')) doneResolve();
    };
    s.fail = (msg) => {
      if (s.failed) return;
      s.failed = msg;
      okReject(new Error(msg)); doneReject(new Error(msg));
    };
    s.event = (m) => {
      const r = rec(m.member);
      switch (m.t) {
        case 'file_ok': okResolve(Array.isArray(m.recipients) ? m.recipients.filter((x) => this.members.has(x)) : []); return;
        case 'error': s.fail(ERROR_TEXT[m.code] || m.error || m.code); return;
        case 'progress': if (r) { r.acked = Number(m.acked) || 0; r.bytes = Math.min(t.size, r.acked * P.CHUNK_SIZE); } break;
        case 'delivered': if (r && r.state === 'sending') { r.state = 'delivered'; r.acked = t.chunks; r.bytes = t.size; } break;
        case 'undeliverable': if (r && r.state === 'sending') { r.state = 'lost'; r.error = m.error || 'undeliverable'; } break;
      }
      this._sendProgress(t);
      checkDone();
    };
    s.presence = (member, event) => {
      const r = rec(member);
      if (!r || r.state !== 'sending') return;
      if (event === 'leave') { r.state = 'lost'; r.error = 'left the room'; checkDone(); this._sendProgress(t); return; }
      // A recipient gone offline mid-transfer gets a grace period to come
      // back (the relay keeps its chunks), as in the Go client.
      if (event === 'offline' && !s.offline.has(member)) {
        s.offline.set(member, setTimeout(() => {
          s.offline.delete(member);
          if (r.state !== 'sending') return;
          r.state = 'lost';
          r.error = 'went offline mid-transfer (the relay keeps its chunks until they expire)';
          checkDone();
          this._sendProgress(t);
        }, OFFLINE_GRACE_MS));
      }
      if (event === 'online') { clearTimeout(s.offline.get(member)); s.offline.delete(member); }
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
      }
      while (ws.bufferedAmount > SEND_HIGH_WATER && !s.failed && ws.readyState === WebSocket.OPEN) await sleep(4);
      if (performance.now() - lastEmit > 100) { lastEmit = performance.now(); this._sendProgress(t); }
    }
    // What the socket still buffers has not left yet.
    while (ws.bufferedAmount > 0 && !s.failed && ws.readyState === WebSocket.OPEN) await sleep(10);
    if (s.failed) throw new Error(s.failed);
  }
}

export function defaultWSURL() {
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
}
