// The browser member of a room: joins over the WebSocket (docs/PROTOCOL.md),
// keeps the member list with verified announcements, sends and receives chat
// envelopes, and moves files with the same sealed manifests and chunks as the
// Go client: over a peer-to-peer data channel (direct, or relayed by the
// room's TURN server; p2p.js) or through the server's relay store — the
// fallback ladder direct -> TURN -> relay of transport 'auto'.
//
// Events (CustomEvent, detail shown):
//   state     {state: 'connecting'|'connected'|'reconnecting'|'restored'|'closed', error}
//             ('restored': connected again after a break; works like 'connected')
//   members   {}                      (read room.members)
//   chat      {id, from, text, mine, time, pending}
//   chatsent  {id}                    (a pending chat of ours reached the server)
//   transfer  {transfer}              (created, progressed, finished or failed)
//   notice    {code, text}            (the server refused something: a limit)
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
const REJOIN_MS = 10000;          // after a reconnect, queued chat waits at most this long for the members online before the break
const SEND_WINDOW = 16 << 20;     // a relay upload runs at most this far ahead of the slowest online recipient's acks
const MAX_ROUNDS = 100;           // relay rounds of one send (a new one after each lost connection)
const MAX_HAVE_RANGES = 1000;     // ranges in one have signal (a prefix of what is held is still true)
const CONFIRM_MS = 5000;          // a chat not confirmed by the server this long is confirmed again
const LOST = 'the connection to the server was lost';
const FATAL_CODES = new Set(['bad_verifier', 'version', 'member_taken', 'room_full', 'too_many']);
const ERROR_TEXT = {
  bad_verifier: 'the server refused the room key (wrong link?)',
  version: 'the server speaks another protocol version; reload the page',
  member_taken: 'this member id is in use elsewhere',
  room_full: 'the room is full; try again later',
  too_many: 'the server is busy or has too many connections from your network; try again later',
  relay_full: 'the relay is full; try again later',
  rate_limited: 'too many requests from your network; slow down and try again',
  too_large: 'too large for the server',
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
    this._sends = new Map();     // relay file id (one per round) -> relay round state (_newSend)
    this._recvs = new Map();     // file id -> recv state
    this._inbox = [];
    this._pumping = false;
    this._acks = [];
    this._pubs = new Map();      // member id -> public key (hex) ever seen: a member's key never changes
    this._connGen = 0;           // connections welcomed so far
    this._awaitBack = [];        // members online when the connection last broke
    this._backBy = 0;            // until when queued chat waits for them (performance.now())
    this._goingAway = false;     // the server said it is shutting down
    this._outbox = [];           // chat not yet confirmed by the server: {id, data, ws}
    this._flushing = false;
    this._turnWaiters = [];      // {ws, n, resolve}: answers awaited (ws.turnSent, ws.turnGot count them)
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
      const refuse = (err) => { if (!welcomed) reject(err); };
      ws.onopen = () => ws.send(JSON.stringify(join));
      ws.onmessage = (ev) => {
        if (!welcomed) {
          let m;
          try { m = JSON.parse(ev.data); } catch { m = null; }
          if (m?.t === 'welcome') {
            welcomed = true;
            // Handled in order with what follows; resolves once the member list is in.
            this._welcomed = () => {
              if (this._ws !== ws) return resolve(); // already gone again: its close handles it
              this._connGen++;
              this._goingAway = false;
              if (!first) this._backBy = performance.now() + REJOIN_MS;
              this._setState(first ? 'connected' : 'restored');
              resolve();
              this._flushChat();
            };
            this._inbox.push(ev.data);
            if (!this._pumping) this._pump();
            return;
          }
          if (m?.t === 'error') {
            const err = new Error(ERROR_TEXT[m.code] || m.error || m.code);
            err.code = m.code;
            // Refused for good; busy, rate-limited or going away: try again later.
            err.fatal = first ? true : ['bad_verifier', 'version', 'member_taken'].includes(m.code);
            refuse(err);
            ws.close();
          }
          return;
        }
        if (typeof ev.data === 'string' && ev.data.includes('"turn"')) this._turnAnswered(ws, ev.data);
        this._inbox.push(typeof ev.data === 'string' ? ev.data : this._preopen(ev.data));
        if (!this._pumping) this._pump();
      };
      ws.onclose = (ev) => {
        if (this._ws !== ws) return;
        this._ws = null;
        this._endTurnWaiters(ws);
        this._failSends(LOST);
        const refused = ev.code === 4001 || ev.code === 1008 || ev.code === 4002;
        const why = ev.code === 4002 ? 'this room was opened again in another tab' : `the server refused this member (${ev.code}${ev.reason ? ': ' + ev.reason : ''})`;
        if (!welcomed) {
          const err = new Error(first ? `could not join: the server closed the connection (${ev.code})` : why);
          err.fatal = first || refused;
          return refuse(err);
        }
        // Who to wait for before sending queued chat (also those still awaited from an earlier break).
        const back = new Set(performance.now() < this._backBy ? this._awaitBack : []);
        for (const id of this.onlineMembers) back.add(id);
        this._awaitBack = [...back];
        if (this._closed) return;
        if (refused) return this._fatal(why);
        this._reconnect();
      };
    });
  }

  _fatal(msg) {
    this._closed = true;
    this._setState('closed', msg);
  }

  /** Connects again with jittered exponential backoff until welcomed (state
   * 'restored'), refused for good, or left. */
  async _reconnect() {
    this._setState('reconnecting');
    // A server that said it is going away (a restart) is tried again at once.
    let delay = this._goingAway ? 40 : 250;
    // The device coming back online (Wi-Fi again, airplane mode off) is
    // worth a try at once rather than after up to 5 s of backoff.
    const online = () => this._retryNow?.();
    globalThis.addEventListener?.('online', online);
    try {
      while (!this._closed) {
        await new Promise((r) => {
          const t = setTimeout(r, delay / 2 + Math.random() * delay / 2);
          this._retryNow = () => { clearTimeout(t); r(); };
        });
        this._retryNow = null;
        if (this._closed) return;
        try {
          await this._connect(false);
          return;
        } catch (e) {
          if (e.fatal) return this._fatal(e.message);
        }
        delay = Math.min(delay * 2, 5000);
      }
    } finally {
      this._retryNow = null;
      globalThis.removeEventListener?.('online', online);
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
        else if (m.code === 'going_away') this._goingAway = true; // the close (1001) follows: reconnect at once
        // A signal (a late candidate or bye) to a member that just left: its sessions end by themselves.
        // Any other refusal (a rate or size limit) is shown, never dropped silently.
        else if (m.code !== 'no_such_member') this.emit('notice', { code: m.code, text: ERROR_TEXT[m.code] || m.error || m.code });
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
    const known = this._pubs.get(id);
    // A member's key never changes (also across a server restart, which forgets members).
    if (known && known !== C.toHex(pub)) return null;
    this._pubs.set(id, C.toHex(pub));
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
    try { this._requestTURN(); } catch { return; }
    await Promise.race([new Promise((r) => this._iceWaiters.push(r)), sleep(5000)]);
  }

  /** Asks for TURN credentials. The server answers every request, in order
   * with the messages before it on the connection: the promise resolves to
   * true once the answer came — everything written before it was handled
   * (a chat stored in the relay) — or to false if the connection ended first. */
  _requestTURN() {
    const ws = this._ws;
    this._send({ t: 'turn' });
    const n = ws.turnSent = (ws.turnSent || 0) + 1;
    return new Promise((resolve) => this._turnWaiters.push({ ws, n, resolve }));
  }

  /** Counts a turn answer on ws as it arrives (before the pump handles it). */
  _turnAnswered(ws, text) {
    let m;
    try { m = JSON.parse(text); } catch { return; }
    if (m?.t !== 'turn') return;
    ws.turnGot = (ws.turnGot || 0) + 1;
    this._turnWaiters = this._turnWaiters.filter((w) => {
      if (w.ws !== ws || w.n > ws.turnGot) return true;
      w.resolve(true);
      return false;
    });
  }

  _endTurnWaiters(ws) {
    this._turnWaiters = this._turnWaiters.filter((w) => {
      if (w.ws !== ws) return true;
      w.resolve(false);
      return false;
    });
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

  /** Seals text and queues it for the relay, which owes it to every known
   * member. Resolves once queued: the chat event says pending, chatsent
   * follows once the server has stored it. Queued while disconnected, and
   * written again (the same envelope: receivers drop a second copy by its
   * id) when the connection breaks before the server confirmed it. */
  async sendChat(text) {
    if (this._closed) throw new Error('not in the room any more');
    if (C.utf8(text).length > C.MAX_CHAT_BYTES) throw new Error(`a message is limited to ${C.MAX_CHAT_BYTES} bytes`);
    const { id, sealed } = await this.keys.sealEnvelope({ sender: this.id }, C.chatPlaintext(text));
    const idHex = C.toHex(id);
    this._seen.add(idHex);
    this._outbox.push({ id: idHex, data: C.b64u(sealed), ws: null });
    this.emit('chat', { id: idHex, from: this.id, text, mine: true, time: Date.now(), pending: true });
    this._flushChat();
  }

  /** Chat still waiting for the server's confirmation. */
  get pendingChats() { return this._outbox.length; }

  _live() {
    const ws = this._ws;
    return ws && ws.readyState === WebSocket.OPEN && (this.state === 'connected' || this.state === 'restored') ? ws : null;
  }

  /** Resolves on the next state or members event, or after ms. */
  _nextEvent(ms) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.removeEventListener('state', done);
        this.removeEventListener('members', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.addEventListener('state', done);
      this.addEventListener('members', done);
    });
  }

  /** After a reconnect, waits (at most REJOIN_MS) for the members online
   * before the break to be online again: a restarted server owes a message
   * only to the members it knows. */
  async _waitRejoined() {
    while (!this._closed && performance.now() < this._backBy &&
      this._awaitBack.some((id) => !this.members.get(id)?.online)) {
      await this._nextEvent(Math.max(10, Math.min(250, this._backBy - performance.now())));
    }
  }

  /** Writes the queued chat, in order, on the live connection, then asks the
   * server to confirm it (a turn request: its answer comes after the
   * messages before it were stored). One runs at a time. */
  async _flushChat() {
    if (this._flushing) return;
    this._flushing = true;
    try {
      while (!this._closed) {
        if (!this._outbox.some((e) => !e.ws || e.ws !== this._ws)) return;
        if (!this._live()) { await this._nextEvent(1000); continue; }
        await this._waitRejoined();
        const ws = this._live();
        if (!ws) continue;
        const batch = this._outbox.filter((e) => e.ws !== ws);
        try {
          for (const e of batch) {
            ws.send(JSON.stringify({ t: 'msg', data: e.data }));
            e.ws = ws;
          }
        } catch { // closing: the next connection takes them
          await this._nextEvent(250);
          continue;
        }
        this._confirmChat(ws, batch);
      }
    } finally {
      this._flushing = false;
    }
  }

  async _confirmChat(ws, batch) {
    for (;;) {
      let ok;
      try {
        ok = await Promise.race([this._requestTURN(), sleep(CONFIRM_MS).then(() => null)]);
      } catch {
        ok = false;
      }
      if (ok === null && this._ws === ws) continue; // no answer (a dropped request?): ask again
      if (!ok) return; // the connection ended first: _flushChat writes them again on the next one
      for (const e of batch) {
        const i = this._outbox.indexOf(e);
        if (i < 0 || e.ws !== ws) continue;
        this._outbox.splice(i, 1);
        this.emit('chatsent', { id: e.id });
      }
      return;
    }
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
    // The same content announced again (a sender's new round after a server
    // restart: a new file id and key): continue the partial file.
    const same = this._sameContent(man);
    if (same && await this._adoptRecv(same, man, from, path, peer)) return;
    const t = new Transfer({ id: man.file, name: safeName(man.name), type: man.type, size: man.size, chunks: man.chunks, direction: 'recv', peer: from, state: 'receiving', path });
    const r = { man, from, t, path, peer, have: new Uint8Array(man.chunks), disk: new Uint8Array(man.chunks), got: 0, written: 0, resumed: false, sink: null, cipher: null, done: false, failed: false, vanished: false, vanishTimer: 0, vanishMsg: '' };
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

  /** A reception of the same content as man (SHA-256, size, chunk size)
   * that has not failed: unfinished, or done already. */
  _sameContent(man) {
    for (const r of this._recvs.values()) {
      if (r.man.sha256 === man.sha256 && r.man.size === man.size && r.man.chunkSize === man.chunkSize &&
        r.man.chunks === man.chunks && !r.failed && r.sink) return r;
    }
    return null;
  }

  /** Continues reception r under a new announcement man of the same content
   * (docs/PROTOCOL.md "Resume"): the partial file and its bitmap stay, the
   * key and file id are the new ones, and the sender hears which chunks it
   * may skip. A file already here in full is confirmed at once. Returns
   * false when r cannot be continued. */
  async _adoptRecv(r, man, from, path, peer) {
    const cipher = await C.newChunkCipher(C.unb64u(man.key), this.keys.roomID, from, C.uuidBytes(man.file), man.chunks, man.size);
    if (r.failed) return false;
    if (r.done) {
      // Every chunk of this announcement is dropped (and acked) on arrival.
      this._recvs.set(man.file, r);
      if (peer) peer.notify({ kind: P.DC_DONE, file: C.uuidBytes(man.file), failed: false, reason: '' });
      else {
        this._sendHave(from, man.file, { have: [[0, man.chunks]] });
        this._sendHave(from, man.file, { done: true });
      }
      return true;
    }
    this._recvs.delete(r.man.file); // chunks of the old announcement still queued are acked and dropped
    clearTimeout(r.vanishTimer);
    r.vanishTimer = 0;
    Object.assign(r, { man, from, cipher, peer, path, resumed: true });
    r.t.path = path;
    r.t.error = '';
    this._recvs.set(man.file, r);
    const held = r.disk.reduce((n, x) => n + x, 0);
    if (held > 0) this._sendHave(from, man.file, { have: haveRanges(r.disk) });
    this.emit('transfer', { transfer: r.t });
    return true;
  }

  /** Tells the sender of a file which chunks are here (have) or that the
   * file is complete and verified (done): best effort, as a sealed signal. */
  _sendHave(to, file, body) {
    this.p2p.sendSignal(to, { kind: 'have', session: file, file, ...body })
      .catch((e) => console.info('cloakroom: could not tell the sender which chunks are here:', e.message));
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
      r.disk[d.index] = 1;
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
      // A sender that skipped chunks cannot learn delivery from the relay.
      if (r.resumed) this._sendHave(r.from, r.man.file, { done: true });
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

  /** The connection broke: every relay round in progress ends (and its
   * send starts a new round once the connection is back). */
  _failSends(msg) {
    for (const s of this._sends.values()) s.fail(msg, true);
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
      if (this.members.get(member)?.online && !t.relayBusy) {
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

  /** Sends the file through the server's relay store to recipients, in
   * rounds (docs/PROTOCOL.md "Resume"): when the connection to the server
   * breaks (a server restart loses the relay store) it waits for a new
   * connection and for the recipients to come back, then announces the same
   * content again under a new file id and key (a chunk key and nonce are
   * never used twice) and skips the chunks every recipient says it holds. */
  async _sendRelay(job, recipients) {
    const { t } = job;
    let round = { man: job.man, key: job.key, sealed: job.sealed };
    let pending = recipients;
    t.relayBusy = (t.relayBusy || 0) + 1;
    try {
      for (let n = 1; ; n++) {
        t.rounds = n;
        const gen = this._connGen;
        let left;
        try {
          await this._relayRound(job, round, pending, n);
          return;
        } catch (e) {
          if (!e.connLost || this._closed || n >= MAX_ROUNDS) throw e;
          left = e.left;
        }
        if (!left.length) return;
        t.note = 'the connection to the server was lost; the file goes on once it is back';
        this._sendProgress(t);
        await this._waitNewConn(gen);
        pending = await this._awaitReturn(t, left);
        t.note = '';
        if (!pending.length) return;
        round = await this._renew(round.man);
      }
    } finally {
      t.relayBusy--;
      t.note = '';
    }
  }

  /** One relay round: announce, upload what the recipients do not all
   * hold, wait for delivery. A lost connection is thrown with connLost and
   * left (the recipients still owed the file). */
  async _relayRound(job, round, recipients, n) {
    const { t, file } = job;
    const { man, key, sealed } = round;
    const s = this._newSend(t, man.file, recipients);
    try {
      try {
        this._send({ t: 'file', file: man.file, chunks: man.chunks, data: C.b64u(sealed), recipients });
      } catch {
        s.fail(LOST, true);
      }
      const got = await s.fileOK;
      const missed = recipients.filter((r) => !got.includes(r));
      if (missed.length) this._lose(t, missed, 'offline when the relay upload started');
      if (got.length === 0) throw new Error('nobody else is online');
      s.narrow(got);
      this._flowing(t);
      for (const m of got) {
        const r = t.recipients.get(m);
        if (!r) continue;
        Object.assign(r, { state: 'sending', path: 'relay', acked: 0 });
        if (n === 1) r.bytes = 0;
        s.members.add(m);
      }
      s.applyEarly();
      this._sendProgress(t);
      await this._upload(t, s, file, man, key);
      t.state = 'delivering';
      this._sendProgress(t);
      await s.allDone;
      if (t.state === 'delivering') t.state = 'sending';
    } catch (e) {
      if (!s.connLost) throw e;
      const err = new Error(LOST);
      err.connLost = true;
      err.left = recipients.filter((m) => ['sending', 'connecting', 'relay'].includes(t.recipients.get(m)?.state));
      if (t.state === 'delivering') t.state = 'sending';
      throw err;
    } finally {
      for (const timer of s.offline.values()) clearTimeout(timer);
      this._sends.delete(man.file);
    }
  }

  /** Waits for a connection newer than generation gen. */
  async _waitNewConn(gen) {
    while (!(this._connGen > gen && this._live())) {
      if (this._closed) throw new Error('left the room');
      await this._nextEvent(1000);
    }
  }

  /** After a reconnect, waits (at most OFFLINE_GRACE_MS) for members to be
   * online again; those not back are reported lost. */
  async _awaitReturn(t, members) {
    const by = performance.now() + OFFLINE_GRACE_MS;
    const away = () => members.filter((m) => !this.members.get(m)?.online);
    while (away().length && performance.now() < by && !this._closed) {
      await this._nextEvent(Math.max(10, Math.min(250, by - performance.now())));
    }
    const gone = away();
    if (gone.length) this._lose(t, gone, 'did not come back after the connection to the server broke');
    return members.filter((m) => !gone.includes(m));
  }

  /** The same content under a new file id and key. */
  async _renew(man) {
    const key = C.randomBytes(32);
    const m = { ...man, file: C.newUUID(), key: C.b64u(key) };
    return { man: m, key, sealed: await this.keys.sealManifest(this.id, m) };
  }

  /** A have signal from a recipient (docs/PROTOCOL.md "Resume"): for a
   * relay send in progress; anything else is ignored. */
  onHave(from, b) {
    if (typeof b.file !== 'string') return;
    this._sends.get(b.file)?.have(from, b);
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

  /** The state of one relay round of t (relay file id file): the
   * recipients asked (s.targets, then those the server accepted), the relay
   * recipients (s.members), the server's events and have signals about them. */
  _newSend(t, file, recipients) {
    const s = {
      failed: '', connLost: false, members: new Set(), offline: new Map(),
      targets: new Set(recipients), haves: new Map(), early: new Set(), skipped: 0,
    };
    let okResolve, okReject, doneResolve, doneReject;
    s.fileOK = new Promise((res, rej) => { okResolve = res; okReject = rej; });
    s.allDone = new Promise((res, rej) => { doneResolve = res; doneReject = rej; });
    s.fileOK.catch(() => {}); s.allDone.catch(() => {});
    const rec = (m) => (s.members.has(m) ? t.recipients.get(m) : null);
    const checkDone = () => {
      if (s.members.size && [...s.members].every((m) => t.recipients.get(m).state !== 'sending')) doneResolve();
    };
    s.fail = (msg, connLost = false) => {
      if (s.failed) return;
      s.failed = msg;
      s.connLost = connLost;
      okReject(new Error(msg)); doneReject(new Error(msg));
    };
    s.event = (m) => {
      const r = rec(m.member);
      switch (m.t) {
        case 'file_ok': okResolve(Array.isArray(m.recipients) ? m.recipients.filter((x) => this.members.has(x)) : []); return;
        case 'error': s.fail(ERROR_TEXT[m.code] || m.error || m.code); return;
        case 'progress': if (r) { r.acked = Number(m.acked) || 0; r.bytes = Math.min(t.size, (r.acked + s.skipped) * P.CHUNK_SIZE); } break;
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
      if (event === 'online' || event === 'join') { clearTimeout(s.offline.get(member)); s.offline.delete(member); }
    };
    // Have signals may overtake file_ok: taken from every member asked,
    // then narrowed to those the server accepted.
    s.narrow = (got) => {
      s.targets = new Set(got);
      for (const m of [...s.haves.keys()]) if (!s.targets.has(m)) s.haves.delete(m);
    };
    s.have = (from, b) => {
      if (!s.targets.has(from)) return;
      if (b.done === true) {
        // Verified in full: the relay cannot report it when chunks were skipped.
        if (s.members.has(from)) s.event({ t: 'delivered', member: from });
        else s.early.add(from);
        return;
      }
      if (!Array.isArray(b.have)) return;
      const bits = new Uint8Array(t.chunks);
      for (const rg of b.have) {
        if (!Array.isArray(rg) || rg.length !== 2 || !Number.isInteger(rg[0]) || !Number.isInteger(rg[1]) ||
          rg[0] < 0 || rg[0] >= rg[1] || rg[1] > t.chunks) {
          console.warn('cloakroom: a malformed have signal; ignored');
          return;
        }
        bits.fill(1, rg[0], rg[1]);
      }
      s.haves.set(from, bits);
    };
    s.applyEarly = () => {
      for (const m of s.early) if (s.members.has(m)) s.event({ t: 'delivered', member: m });
      s.early.clear();
    };
    // A chunk is skipped only when every recipient of the round holds it.
    s.allHave = (i) => {
      if (s.haves.size < s.targets.size) return false;
      for (const m of s.targets) if (!s.haves.get(m)?.[i]) return false;
      return true;
    };
    // n chunks into the round, a whole window ahead of an online recipient's acks.
    s.lagging = (n, window) => [...s.members].some((m) => {
      const r = t.recipients.get(m);
      return r?.state === 'sending' && this.members.get(m)?.online && n > (r.acked || 0) + window;
    });
    this._sends.set(file, s);
    return s;
  }

  /** Uploads the chunks of one round that not every recipient holds, at most
   * SEND_WINDOW ahead of the slowest online recipient (what a server
   * restart can lose). */
  async _upload(t, s, file, man, key) {
    const fid = C.uuidBytes(man.file);
    const cipher = await C.newChunkCipher(key, this.keys.roomID, this.id, fid, man.chunks, man.size);
    const ws = this._ws;
    const cs = man.chunkSize;
    const window = Math.max(1, Math.floor(SEND_WINDOW / cs));
    const check = () => {
      if (!s.failed && (this._ws !== ws || ws?.readyState !== WebSocket.OPEN)) s.fail(LOST, true);
      if (s.failed) throw new Error(s.failed);
    };
    const sending = () => [...s.members].some((m) => t.recipients.get(m)?.state === 'sending');
    let n = 0;
    let lastEmit = 0;
    for (let first = 0; first < man.chunks && sending(); first += READ_BLOCK) {
      check();
      const last = Math.min(man.chunks, first + READ_BLOCK);
      const want = [];
      for (let i = first; i < last; i++) {
        if (s.allHave(i)) s.skipped++;
        else want.push(i);
      }
      if (!want.length) continue;
      const block = new Uint8Array(await file.slice(first * cs, Math.min(man.size, last * cs)).arrayBuffer());
      // Seal the block's chunks concurrently, then send them in order.
      const sealed = await Promise.all(want.map((i) => {
        const plain = new Uint8Array(cs); // every chunk sealed at full size: the last one zero-padded
        plain.set(block.subarray((i - first) * cs, Math.min(block.length, (i - first + 1) * cs)));
        return cipher.seal(i, plain);
      }));
      for (let k = 0; k < want.length; k++) {
        const i = want[k];
        if (s.allHave(i)) { s.skipped++; continue; }
        while (s.lagging(n, window)) { check(); await sleep(10); }
        check();
        ws.send(P.chunkUpFrame(fid, i, man.chunks, sealed[k]));
        n++;
        t.uploaded = (t.uploaded || 0) + (i === man.chunks - 1 ? man.size - i * cs : cs);
      }
      while (ws.bufferedAmount > SEND_HIGH_WATER && !s.failed && ws.readyState === WebSocket.OPEN) await sleep(4);
      if (performance.now() - lastEmit > 100) { lastEmit = performance.now(); this._sendProgress(t); }
    }
    // What the socket still buffers has not left yet.
    while (ws.bufferedAmount > 0 && !s.failed && ws.readyState === WebSocket.OPEN) await sleep(10);
    check();
  }
}

/** The chunks held (bitmap) as [lo, hi) ranges, at most MAX_HAVE_RANGES and
 * small enough for one signal (a prefix of what is held is still true). */
export function haveRanges(bits) {
  const out = [];
  let size = 0;
  for (let i = 0; i < bits.length && out.length < MAX_HAVE_RANGES;) {
    if (!bits[i]) { i++; continue; }
    let j = i;
    while (j < bits.length && bits[j]) j++;
    size += String(i).length + String(j).length + 4;
    if (size > 12000) break;
    out.push([i, j]);
    i = j;
  }
  return out;
}

export function defaultWSURL() {
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
}
