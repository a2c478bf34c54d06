// Peer-to-peer sessions of the browser client: one RTCPeerConnection and one
// data channel per session, the same sealed signalling, roles, key
// confirmation and data-channel messages as the Go client (client/peer.go,
// client/signal.go, client/p2p.go; docs/PROTOCOL.md "Peer-to-peer sessions"),
// so browser <-> browser and browser <-> Go both work in both directions.
//
// Roles: the sender of a file offers each recipient a fresh session (a new
// session id) per rung of the ladder; the recipient answers. Sessions never
// share a peer connection, so two members offering each other at once is no
// glare: they are two sessions.
//
// Signals are sealed with the pairwise key (crypto.js Pair: one per member
// for the whole page session, counters strictly increasing per direction);
// they are sealed and written strictly in order per member, and opened in
// order per member. A signal that fails to open aborts every session with
// that member.
import * as C from './crypto.js';
import * as P from './protocol.js';
import { Mode, Path, Signal, Transport } from './protocol.js';
import { hasWebRTC, NO_WEBRTC } from './caps.js';

const DC_LABEL = 'cloakroom';
const DC_ID = 0; // the negotiated channel's SCTP stream id (the Go client's dcID)
// Chromium closes a data channel whose bufferedAmount passes ~16 MiB: stay
// well under it, and refill when it drains below the low mark (an event).
export const HIGH_WATER = 8 << 20;
export const LOW_WATER = 2 << 20;
/** A session with no progress for this long (nothing drains, nothing
 * acknowledged) is given up: the peer stopped reading or vanished. */
export const STALL_MS = 30000;
/** A session with a member the server reports offline ends once it has been
 * quiet this long (a killed process sends no close; ICE would take ~30 s). */
export const QUIET_MS = 5000;
const ICE_REFRESH_BEFORE_S = 30 * 60;

/** STUN URLs from the TURN servers' UDP URLs (a TURN server answers STUN binding requests). */
export function stunURLs(ice) {
  const out = [];
  for (const s of ice || []) {
    for (const u of [].concat(s.urls || [])) {
      if (u.startsWith('turn:') && !u.includes('transport=tcp')) out.push('stun:' + u.slice(5).split('?')[0]);
    }
  }
  return out;
}

/** The value of the first a=fingerprint line, lower case (as Go's sdpFingerprint). */
export function sdpFingerprint(sdp) {
  for (const line of String(sdp || '').split('\n')) {
    const l = line.trim();
    if (l.startsWith('a=fingerprint:')) return l.slice('a=fingerprint:'.length).trim().toLowerCase();
  }
  return '';
}

const short = (id) => String(id).slice(0, 8);

/** One peer connection with a member: one data channel, key confirmation
 * over both DTLS fingerprints, flow control on send. */
export class Peer {
  constructor(p2p, member, session, offerer, mode, config) {
    this.p2p = p2p;
    this.member = member;
    this.session = session;
    this.offerer = offerer;
    this.mode = mode;
    this.path = P.modePath(mode); // until the selected pair is known
    this.relayProtocol = '';
    this.err = null;
    this.handler = null;       // after confirmation: every message (Uint8Array)
    this.onend = null;         // called once when the session ends
    this._confirmed = false;   // the peer's tag verified
    this._sentOwn = false;     // our tag sent
    this._descSent = false;
    this._outbox = [];         // our candidates gathered before our description went out
    this._remoteSet = false;
    this._pending = [];        // remote candidates before the remote description
    this._early = [];          // messages that came while our confirmation was being verified
    this._verifying = null;
    this._lowWaiters = [];
    this._activity = performance.now();
    this.ready = new Promise((res, rej) => { this._ready = res; this._readyFail = rej; });
    this.ready.catch(() => {});
    this.ended = new Promise((res) => { this._ended = res; });

    const pc = new RTCPeerConnection(config);
    this.pc = pc;
    pc.onicecandidate = (e) => {
      if (!e.candidate || !e.candidate.candidate) return;
      const init = e.candidate.toJSON();
      if (!this._descSent) { this._outbox.push(init); return; }
      this._sendCandidate(init);
    };
    pc.onconnectionstatechange = () => {
      // 'disconnected': consent checks missed for a while (a busy machine, a
      // Wi-Fi hiccup); ICE may recover, and says 'failed' when it does not.
      if (pc.connectionState === 'failed') this.fail(new Error(`${mode} connection with ${short(member)} failed`));
      else if (pc.connectionState === 'closed') this.fail(new Error(`${mode} connection with ${short(member)} closed`));
    };
    // One pre-negotiated channel (same id on both sides, no in-band open
    // handshake): 'open' fires once this side's SCTP association is up. A
    // channel announced by an in-band open could be 'open' while Chromium's
    // association was still finishing, and a message sent at once then never
    // left the browser (docs/DECISIONS.md).
    this._attach(pc.createDataChannel(DC_LABEL, { ordered: true, negotiated: true, id: DC_ID }));
  }

  _attach(dc) {
    this.dc = dc;
    dc.binaryType = 'arraybuffer';
    dc.bufferedAmountLowThreshold = LOW_WATER;
    dc.onbufferedamountlow = () => this._wakeLow();
    dc.onclose = () => this.fail(new Error(`data channel with ${short(this.member)} closed`));
    dc.onerror = (e) => this.fail(new Error(`data channel with ${short(this.member)}: ${e.error?.message || 'error'}`));
    dc.onmessage = (e) => this._onMessage(new Uint8Array(e.data));
    if (dc.readyState === 'open') this._onOpen();
    else dc.onopen = () => this._onOpen();
  }

  _fingerprints() {
    const l = sdpFingerprint(this.pc.localDescription?.sdp);
    const r = sdpFingerprint(this.pc.remoteDescription?.sdp);
    if (!l || !r) throw new Error('no DTLS fingerprint in the session descriptions');
    return this.offerer ? [l, r] : [r, l];
  }

  async _onOpen() {
    try {
      const pair = await this.p2p.pairFor(this.member);
      const [off, ans] = this._fingerprints();
      const tag = await pair.confirm(off, ans, this.offerer);
      if (!tag) throw new Error('fingerprint too long');
      if (this.err) return;
      this.dc.send(P.dcMessage({ kind: P.DC_CONFIRM, tag }));
      this._sentOwn = true;
      this._maybeReady();
    } catch (e) {
      this.fail(new Error('key confirmation failed: ' + e.message));
    }
  }

  _onMessage(b) {
    if (this.err) return;
    this._activity = performance.now();
    if (this._confirmed) {
      this.handler?.(b);
      return;
    }
    if (this._verifying) { // the peer may go on once it has our tag; keep order
      if (this._early.length < 64) this._early.push(b);
      else this.fail(new Error('too many messages before key confirmation'));
      return;
    }
    let m;
    try { m = P.parseDC(b); } catch { m = null; }
    if (!m || m.kind !== P.DC_CONFIRM) {
      this.fail(new Error(`first message from ${short(this.member)} is not a key confirmation`));
      return;
    }
    this._verifying = (async () => {
      try {
        const pair = await this.p2p.pairFor(this.member);
        const [off, ans] = this._fingerprints();
        if (!(await pair.verifyConfirm(off, ans, !this.offerer, m.tag))) throw new Error('tag does not match');
      } catch (e) {
        this.fail(new Error(`key confirmation from ${short(this.member)} failed (the data channel is not bound to the member's key): ${e.message}`));
        return;
      }
      this._confirmed = true;
      this._verifying = null;
      this._maybeReady();
      const early = this._early;
      this._early = [];
      for (const x of early) this.handler?.(x);
    })();
  }

  async _maybeReady() {
    if (!this._confirmed || !this._sentOwn || this.err || this._isReady) return;
    this._isReady = true;
    await this._readPath();
    if (!this.err) this._ready();
  }

  /** Reads the path from the selected candidate pair: Path.TURN when either
   * end is a relay candidate, else Path.DIRECT. */
  async _readPath() {
    try {
      const stats = await this.pc.getStats();
      let pairID = '';
      stats.forEach((r) => { if (r.type === 'transport' && r.selectedCandidatePairId) pairID = r.selectedCandidatePairId; });
      let pair = pairID ? stats.get(pairID) : null;
      if (!pair) stats.forEach((r) => { if (!pair && r.type === 'candidate-pair' && r.state === 'succeeded' && r.nominated) pair = r; });
      if (!pair) return;
      const local = stats.get(pair.localCandidateId);
      const remote = stats.get(pair.remoteCandidateId);
      if (!local || !remote) return;
      const relayed = local.candidateType === 'relay' || remote.candidateType === 'relay';
      this.path = relayed ? Path.TURN : Path.DIRECT;
      this.relayProtocol = local.candidateType === 'relay' ? (local.relayProtocol || '') : '';
    } catch { /* keep the mode's name */ }
  }

  /** Waits until the channel is open and both keys are confirmed, or fails
   * after timeoutMs. */
  waitReady(timeoutMs) {
    let t;
    const timeout = new Promise((_, rej) => {
      t = setTimeout(() => {
        const e = new Error(`${this.mode} connection with ${short(this.member)}: no connection within ${timeoutMs / 1000} s`);
        this.fail(e);
        rej(e);
      }, timeoutMs);
    });
    return Promise.race([this.ready, timeout]).finally(() => clearTimeout(t));
  }

  _sendCandidate(init) {
    this.p2p.sendSignal(this.member, { kind: Signal.CANDIDATE, session: this.session, candidate: init }).catch((e) => this.fail(e));
  }

  /** Signals our description, then the candidates gathered while it was
   * being made (a candidate must not overtake its description). */
  async sendDescription(body) {
    const sent = this.p2p.sendSignal(this.member, body);
    this._descSent = true;
    const out = this._outbox;
    this._outbox = [];
    for (const c of out) this._sendCandidate(c);
    await sent;
  }

  async setRemote(desc) {
    try {
      await this.pc.setRemoteDescription(desc);
    } catch (e) {
      this.fail(new Error(`remote description from ${short(this.member)}: ${e.message}`));
      return;
    }
    this._remoteSet = true;
    const pending = this._pending;
    this._pending = [];
    for (const c of pending) this.addCandidate(c);
  }

  addCandidate(c) {
    if (!c || typeof c !== 'object' || typeof c.candidate !== 'string') return;
    if (!this._remoteSet) {
      if (this._pending.length < 64) this._pending.push(c);
      return;
    }
    this.pc.addIceCandidate(c).catch(() => { /* a candidate we cannot use */ });
  }

  /** Sends one message, waiting (on bufferedamountlow) while too much is
   * buffered. Rejects when the session ends or stalls. */
  async send(b) {
    if (this.err) throw this.err;
    while (this.dc.bufferedAmount + b.byteLength > HIGH_WATER) {
      await this._waitLow();
      if (this.err) throw this.err;
    }
    try {
      this.dc.send(b);
    } catch (e) {
      this.fail(new Error(`send to ${short(this.member)}: ${e.message}`));
      throw this.err;
    }
  }

  _waitLow() {
    return new Promise((resolve) => {
      const w = { resolve, timer: 0, amount: this.dc.bufferedAmount };
      const check = () => {
        // Stalled: nothing drained since the last look.
        if (this.dc.bufferedAmount >= w.amount && performance.now() - this._activity > STALL_MS) {
          this.fail(new Error(`${short(this.member)} stopped reading (nothing sent for ${STALL_MS / 1000} s)`));
          return;
        }
        if (this.dc.bufferedAmount < w.amount) this._activity = performance.now();
        w.amount = this.dc.bufferedAmount;
        w.timer = setTimeout(check, STALL_MS / 3);
      };
      w.timer = setTimeout(check, STALL_MS / 3);
      this._lowWaiters.push(w);
    });
  }

  _wakeLow() {
    this._activity = performance.now();
    const ws = this._lowWaiters;
    this._lowWaiters = [];
    for (const w of ws) { clearTimeout(w.timer); w.resolve(); }
  }

  /** Sends a small control message, ignoring failure (the sender learns of
   * a lost session by itself). */
  notify(m) {
    if (this.err || this.dc?.readyState !== 'open') return;
    try { this.dc.send(P.dcMessage(m)); } catch { /* closing */ }
  }

  /** The server says the member went offline: watch the session, and end
   * it once it has been quiet for QUIET_MS while the member stays offline. */
  suspect() {
    if (this._suspect || this.err) return;
    this._suspect = setInterval(() => {
      if (this.err || this.p2p.room.members.get(this.member)?.online) {
        clearInterval(this._suspect);
        this._suspect = 0;
        return;
      }
      if (performance.now() - this._activity > QUIET_MS) {
        this.fail(new Error(`${short(this.member)} went offline and the connection went quiet`));
      }
    }, 1000);
  }

  /** Ends the session with err (the first error wins). */
  fail(err) {
    if (this.err) return;
    this.err = err instanceof Error ? err : new Error(String(err));
    clearInterval(this._suspect);
    this._readyFail(this.err);
    this._wakeLow();
    this.p2p._forget(this);
    try { this.dc?.close(); } catch { /* closed */ }
    try { this.pc.close(); } catch { /* closed */ }
    this._ended(this.err);
    try { this.onend?.(this.err); } catch (e) { console.warn('cloakroom: session end handler:', e.message); }
  }

  /** Ends the session normally. */
  close() { this.fail(new Error('session closed')); }

  /** Ends it and tells the peer to drop its half (also after a failure:
   * a rung that timed out here may still be half open there). */
  bye() {
    if (!this._byeSent) {
      this._byeSent = true;
      this.p2p.sendSignal(this.member, { kind: Signal.BYE, session: this.session }).catch(() => {});
    }
    this.close();
  }
}

/** The peer-to-peer side of a Room. room provides: id, keys, ident,
 * members (Map id -> {pub}), transport, ice, iceExpires, send(obj),
 * freshICE(), and onOffer(peer) for answering sessions. */
export class P2P {
  constructor(room) {
    this.room = room;
    this.peers = new Map();  // session -> Peer
    this._pairs = new Map(); // member -> Promise<Pair>
    this._txQ = new Map();   // member -> promise chain (seal + write in order)
    this._rxQ = new Map();   // member -> promise chain (open + handle in order)
  }

  /** The pairwise channel with a verified member, made once for the page session. */
  pairFor(member) {
    let p = this._pairs.get(member);
    if (!p) {
      const m = this.room.members.get(member);
      if (!m) return Promise.reject(new Error(`member ${short(member)} is not a verified member of the room`));
      p = C.newPair(this.room.keys, this.room.id, this.room.ident, member, m.pub).then((pair) => {
        // A member kept across a reload has the same pairwise keys: its counters go on (room.js).
        if (this.room.ctrBase) pair.sendCtr = this.room.ctrBase;
        return pair;
      });
      p.catch(() => this._pairs.delete(member));
      this._pairs.set(member, p);
    }
    return p;
  }

  /** Seals body for member and hands it to the server, strictly in order:
   * counters must reach the peer in the order they were used. */
  sendSignal(member, body) {
    const prev = this._txQ.get(member) || Promise.resolve();
    const run = prev.then(async () => {
      const pair = await this.pairFor(member);
      const sealed = await pair.sealSignal(C.utf8(JSON.stringify(body)));
      this.room.onCounter?.(pair.sendCtr); // a kept identity's high-water mark (stay.js)
      if (sealed.length > P.MAX_SIGNAL_BYTES) throw new Error(`signal of ${sealed.length} bytes over the limit`);
      this.room.send({ t: 'signal', to: member, data: C.b64u(sealed) });
    });
    this._txQ.set(member, run.catch(() => {}));
    return run;
  }

  /** A signal from the server: opened and handled in order per member. */
  onSignal(m) {
    const from = m.from;
    if (typeof from !== 'string' || typeof m.data !== 'string') return;
    const prev = this._rxQ.get(from) || Promise.resolve();
    const run = prev.then(() => this._handle(from, m.data)).catch((e) => console.warn('cloakroom: signal dropped:', e.message));
    this._rxQ.set(from, run);
  }

  async _handle(from, data) {
    if (!this.room.members.has(from)) return; // unverified members are refused
    let sealed;
    try { sealed = C.unb64u(data); } catch { return; }
    const pair = await this.pairFor(from);
    let plain;
    try {
      plain = await pair.openSignal(sealed);
    } catch (e) {
      const err = new Error(`a signal from ${short(from)} failed authentication (tampered or replayed by the server?)`);
      console.warn('cloakroom:', err.message);
      this.abortMember(from, err);
      return;
    }
    let b;
    try { b = JSON.parse(C.fromUTF8(plain)); } catch { b = null; }
    if (!b || typeof b !== 'object' || typeof b.session !== 'string' || !b.session) return;
    const p = this.peers.get(b.session);
    if (p && p.member !== from) return; // another member's session
    switch (b.kind) {
      case Signal.OFFER:
        if (!p) await this._answer(from, b);
        return;
      case Signal.ANSWER:
        if (p && p.offerer && typeof b.sdp === 'string') await p.setRemote({ type: 'answer', sdp: b.sdp });
        return;
      case Signal.CANDIDATE:
        if (p) p.addCandidate(b.candidate);
        return;
      case Signal.DECLINE:
        if (p) p.fail(new Error(`${short(from)} declined a peer-to-peer connection: ${String(b.reason || '').slice(0, 200)}`));
        return;
      case Signal.BYE:
        if (p) p.close();
        return;
      case Signal.HAVE: // a receiver's chunks held, for a relay send (docs/PROTOCOL.md "Resume")
        this.room.onHave?.(from, b);
        return;
      case Signal.PING: { // a member's presence challenge: answering proves we hold our key
        const pong = () => this.sendSignal(from, { kind: Signal.PONG, session: b.session }).catch(() => {});
        if (!this.room.deferPong?.(from, pong)) pong();
        return;
      }
      case Signal.PONG:
        this.room.onPong?.(from, b.session);
        return;
      case Signal.LIB: // v4: a library entry the member holds or fetches (library.js)
        await this.room.onLib?.(from, b);
        return;
      case Signal.HIST: // v4: recent chat for us, a newcomer
        await this.room.onHist?.(from, b);
        return;
      case Signal.NAME: // the member's display name (names.js)
        this.room.onName?.(from, b);
      case Signal.XFER: // transfer control: cancel, decline, ask, accept (control.js)
        this.room.onXfer?.(from, b);
        return;
      // Other kinds (a newer client's) are ignored.
    }
  }

  /** The ICE configuration of a mode: direct uses the room's TURN server
   * only as a STUN server; TURN mode uses relay candidates only. */
  async config(mode) {
    await this.room.freshICE?.();
    const ice = this.room.ice || [];
    if (mode === Mode.TURN) {
      if (!ice.length) throw new Error('the server offers no TURN relay');
      return {
        iceServers: ice.map((s) => ({ urls: s.urls, username: s.username, credential: s.credential })),
        iceTransportPolicy: 'relay',
      };
    }
    const stun = stunURLs(ice);
    return { iceServers: stun.length ? [{ urls: stun }] : [] };
  }

  /** Starts an offering session with member in mode. */
  async offer(member, mode) {
    const p = new Peer(this, member, C.newUUID(), true, mode, await this.config(mode));
    this.peers.set(p.session, p);
    // Whoever offered, a session is a link (swarm.js): what comes on it goes to the room's pump.
    p.handler = (b) => this.room.receiver?.dcIn(p, b);
    try {
      const sd = await p.pc.createOffer();
      await p.pc.setLocalDescription(sd);
      await p.sendDescription({ kind: Signal.OFFER, session: p.session, mode, sdp: sd.sdp });
    } catch (e) {
      p.fail(new Error(`offer to ${short(member)}: ${e.message}`));
    }
    return p;
  }

  /** Accepts an offer (unless this page is forced onto the relay). */
  async _answer(from, b) {
    const decline = (reason) => this.sendSignal(from, { kind: Signal.DECLINE, session: b.session, reason }).catch(() => {});
    if (this.room.transport === Transport.RELAY) return decline(hasWebRTC ? 'receiver uses transport relay' : NO_WEBRTC);
    if (typeof b.sdp !== 'string') return;
    const mode = b.mode === Mode.TURN ? Mode.TURN : Mode.DIRECT;
    let p;
    try {
      p = new Peer(this, from, b.session, false, mode, await this.config(mode));
    } catch (e) {
      return decline(e.message);
    }
    this.peers.set(p.session, p);
    this.room.onOffer?.(p);
    await p.setRemote({ type: 'offer', sdp: b.sdp });
    if (p.err) return;
    try {
      const sd = await p.pc.createAnswer();
      await p.pc.setLocalDescription(sd);
      await p.sendDescription({ kind: Signal.ANSWER, session: b.session, sdp: sd.sdp });
    } catch (e) {
      p.fail(new Error(`answer to ${short(from)}: ${e.message}`));
    }
  }

  /** The member went offline or left: its sessions end once quiet. */
  memberGone(member) {
    for (const p of this.peers.values()) if (p.member === member) p.suspect();
  }

  /** Fails every session with member. */
  abortMember(member, err) {
    for (const p of [...this.peers.values()]) if (p.member === member) p.fail(err);
  }

  closeAll() {
    for (const p of [...this.peers.values()]) p.close();
  }

  _forget(p) {
    if (this.peers.get(p.session) === p) this.peers.delete(p.session);
  }
}

export { ICE_REFRESH_BEFORE_S };
