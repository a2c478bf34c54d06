// Receiving files: the receptions of this page, whatever path their chunks
// take. A chunk comes from a source — the server's relay (relayManifest,
// preopenRelay, relayChunk; the session's pump calls them in order) or a
// peer-to-peer session (onOffer: the session's messages are queued through
// deps.enqueue, so they are handled in order with relay frames) — and every
// source ends in _takeChunk, which verifies the chunk against the manifest
// and writes it to the reception's sink. A file announced again (a sender's
// fallback to the relay, or a new round after a server restart) continues
// its partial state (docs/PROTOCOL.md "Resume").
//
// A sink (deps.openSink(manifest), e.g. store.js's OPFS file) is:
//   kind                  what it writes to (shown as the transfer's storage)
//   write(offset, bytes)  a promise; writes may overlap
//   finish()              after every write: the SHA-256 (hex) of the file
//   file()                the finished file (a Blob)
//   abort()               drops what was written
import * as C from './crypto.js';
import * as P from './protocol.js';
import { Path, Signal, XferOp } from './protocol.js';
import { Transfer, safeName, safeType } from './transfer.js';
import { Verdict, validStamp } from './order.js';

const VANISH_MS = 15000;      // a reception whose peer-to-peer sender vanished waits this long for a new path
const MAX_HAVE_RANGES = 1000; // ranges in one have signal (a prefix of what is held is still true)
const PROGRESS_MS = 50;       // a reception's progress is told (a 'transfer' event) at most this often

/** The receptions of a room. deps: keys (RoomKeys), members (Map id ->
 * {online}), emit(type, detail), sendSignal(member, body) (sealed, to one
 * member), openSink(manifest) -> a sink, enqueue(item) (into the session's
 * in-order pump, which hands it back to peerItem), ack(item) (a relay item
 * handled). */
export class Receiver {
  constructor(deps) {
    this.d = deps;
    this._recvs = new Map(); // file id -> reception state
    this._cancelled = new Map(); // file id -> origin: cancelled by its sender (perhaps before it started here)
    // The page's choices (control.js): whether a file waits for the user's
    // Accept, and whether this device has room for size bytes
    // ({ok, message}). By default every file starts at once.
    this.policy = { needsAccept: () => false, storageCheck: async () => ({ ok: true, message: '' }) };
  }

  _emit(type, detail) { this.d.emit(type, detail); }

  /** The member went offline or left: a reception whose peer-to-peer sender
   * already vanished gets no new path. */
  memberGone(member) {
    for (const r of this._recvs.values()) {
      if (r.from === member && r.vanishTimer) this._failRecv(r, r.vanishMsg + '; the sender went offline', true);
    }
  }

  // ---- receptions ----------------------------------------------------------

  /** Prepares the reception of a file announced by from, through the relay
   * (peer null) or a peer-to-peer session. A file already being received
   * keeps its partial state: chunks from any path verify the same way, so a
   * sender that falls back to the relay mid-transfer resumes it. */
  async _startRecv(man, from, path, peer, env = null, accepted = false) {
    const old = this._recvs.get(man.file);
    if (old) {
      if (old.from !== from) throw new Error(`file id ${man.file} reused by another member`);
      if (!(old.failed && (old.vanished || old.restart))) {
        clearTimeout(old.vanishTimer);
        old.vanishTimer = 0;
        old.peer = peer;
        old.path = path;
        old.t.path = path;
        if (!old.failed && !old.done) old.t.error = '';
        this._emit('transfer', { transfer: old.t });
        if (peer && (old.done || old.failed)) this._notifyDone(old, peer, old.failed, 'already handled');
        return;
      }
      this._recvs.delete(man.file); // its sender vanished earlier; start again
    }
    // The same content announced again (a sender's new round after a server
    // restart: a new file id and key): continue the partial file.
    const same = this._sameContent(man);
    if (same && same.from !== from && !same.done && this.d.members.get(same.from)?.online) {
      // Anyone who saw a manifest could announce its content: only its own
      // sender (or a new one once it is gone) takes a reception over.
      console.warn('cloakroom: refused another member\'s announcement of content being received');
      if (peer) peer.notify({ kind: P.DC_DONE, file: C.uuidBytes(man.file), failed: true, reason: 'the same content is being received from another member' });
      return;
    }
    if (same && await this._adoptRecv(same, man, from, path, peer)) return;
    const t = new Transfer({ id: man.file, name: safeName(man.name), type: safeType(man.type), size: man.size, chunks: man.chunks, direction: 'recv', peer: from, state: 'receiving', path, poster: man.poster, duration: man.duration });
    const r = { man, from, t, path, peer, env, have: new Uint8Array(man.chunks), disk: new Uint8Array(man.chunks), got: 0, written: 0, resumed: false, sink: null, cipher: null, done: false, failed: false, vanished: false, vanishTimer: 0, vanishMsg: '' };
    let ready;
    r.ready = new Promise((res) => { ready = res; }); // once the sink is open, the user is asked, or the reception failed
    this._recvs.set(man.file, r);
    try {
      r.cipher = await C.newChunkCipher(C.unb64u(man.key), this.d.keys.roomID, from, C.uuidBytes(man.file), man.chunks, man.size);
      if (this._cancelled.get(man.file) === from) { // its cancel overtook its announcement
        t.bySender = true;
        this._failRecv(r, 'Cancelled by the sender', false, { state: 'cancelled', notify: false, restart: true });
        return;
      }
      // A large file pulled from members (not pushed by the relay) waits
      // for the user's Accept (docs/TRANSFERS.md); its sender hears so.
      if (!accepted && path !== Path.RELAY && this.policy.needsAccept(man)) {
        r.offered = true;
        t.state = 'offered';
        this._xfer(from, man.file, XferOp.ASK);
        this._emit('transfer', { transfer: t });
        return;
      }
      const room = await this.policy.storageCheck(man.size);
      if (r.failed) return; // cancelled by its sender (or the user) meanwhile
      if (!room.ok) {
        this._failRecv(r, room.message, false, { reason: 'not enough storage space on this device', restart: true });
        return;
      }
      const sink = await this.d.openSink(man);
      // Ended while the sink was opened: its file goes at once (_failRecv
      // had no sink to remove).
      if (r.failed) { sink.abort(); return; }
      r.sink = sink;
      t.storage = sink.kind;
    } catch (e) {
      this._failRecv(r, e.message);
      return;
    } finally {
      ready();
    }
    this._emit('transfer', { transfer: t });
  }

  // ---- the user's control (control.js) ---------------------------------------

  /** Accept an offered file: refused (false, the card says why) when this
   * device has no room for it; else it starts. */
  async accept(id) {
    const r = this._recvs.get(id);
    if (!r || !r.offered || r.failed) return false;
    const room = await this.policy.storageCheck(r.man.size);
    if (!r.offered || r.failed) return false;
    if (!room.ok) {
      r.t.refusal = room.message;
      this._emit('transfer', { transfer: r.t });
      return false;
    }
    r.offered = false;
    r.t.refusal = '';
    r.t.state = 'receiving';
    r.t.started = performance.now();
    try {
      const sink = await this.d.openSink(r.man);
      if (r.failed) { sink.abort(); return false; } // cancelled by its sender meanwhile
      r.sink = sink;
      r.t.storage = sink.kind;
    } catch (e) {
      this._failRecv(r, e.message);
      return false;
    }
    this._xfer(r.from, r.man.file, XferOp.ACCEPT);
    this._emit('transfer', { transfer: r.t });
    if (!r.failed && this.d.swarm) this.d.swarm.fetch(r, r.env);
    return true;
  }

  /** Decline an offered file: its sender's row says so. */
  decline(id) {
    const r = this._recvs.get(id);
    if (!r || r.done || r.failed) return;
    this._failRecv(r, 'You declined it', false, { state: 'declined', reason: P.REASON_DECLINED, restart: true });
    this._xfer(r.from, r.man.file, XferOp.DECLINE);
  }

  /** Cancel a reception: its partial file is removed, its sender's row says so. */
  cancel(id) {
    const r = this._recvs.get(id);
    if (!r || r.done || r.failed) return;
    this._failRecv(r, 'You cancelled it', false, { state: 'cancelled', reason: P.REASON_CANCELLED, restart: true });
    this._xfer(r.from, r.man.file, XferOp.CANCEL);
  }

  /** Fetch a failed or cancelled reception again from the members who hold
   * it (the origin hears it, and may offer it again). Not one its sender
   * cancelled: the sender decides. */
  async retry(id) {
    const r = this._recvs.get(id);
    if (!r || !r.failed || r.t.bySender) return;
    const env = r.env || this.d.swarm?.entries.get(id)?.env;
    if (!env) return;
    r.restart = true;
    await this._startRecv(r.man, r.from, '', null, env, true);
    const n = this._recvs.get(id);
    await n?.ready;
    if (n && n !== r && n.sink && !n.failed) {
      this.d.swarm?.fetch(n, env);
      this._xfer(n.from, id, XferOp.ACCEPT);
    }
  }

  /** An xfer signal about a file we receive: its sender cancelled it (a
   * reception not started yet is refused when it starts), or offers it
   * again after a cancel. */
  async onXfer(from, b) {
    const r = this._recvs.get(b.file);
    if (r && r.from !== from) return;
    if (b.op === XferOp.CANCEL) {
      if (this._cancelled.size > 1000) this._cancelled.clear();
      this._cancelled.set(b.file, from);
      if (!r || r.done || r.failed) return;
      r.t.bySender = true;
      this._failRecv(r, 'Cancelled by the sender', false, { state: 'cancelled', notify: false, restart: true });
    } else if (b.op === XferOp.OFFER && this._cancelled.get(b.file) === from) {
      this._cancelled.delete(b.file);
      // Its new announcement may have come first and been refused: start it again.
      if (r?.failed && r.t.bySender && r.env) {
        await this._startRecv(r.man, r.from, '', null, r.env);
        const n = this._recvs.get(b.file);
        await n?.ready;
        if (n && n !== r && n.sink && !n.failed) this.d.swarm?.fetch(n, r.env);
      }
    }
  }

  _xfer(to, file, op) {
    this.d.sendSignal(to, { kind: Signal.XFER, session: file, file, op })
      .catch((e) => console.info('cloakroom: could not tell the sender about a transfer:', e.message));
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
    const cipher = await C.newChunkCipher(C.unb64u(man.key), this.d.keys.roomID, from, C.uuidBytes(man.file), man.chunks, man.size);
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
    this._emit('transfer', { transfer: r.t });
    return true;
  }

  /** Tells the sender of a file which chunks are here (have) or that the
   * file is complete and verified (done): best effort, as a sealed signal. */
  _sendHave(to, file, body) {
    this.d.sendSignal(to, { kind: Signal.HAVE, session: file, file, ...body })
      .catch((e) => console.info('cloakroom: could not tell the sender which chunks are here:', e.message));
  }

  /** Starts decrypting a chunk as it arrives when its file is known, so
   * decryption overlaps the handling of the chunks before it. */
  _preopenChunk(d, sender) {
    const r = this._recvs.get(C.uuidString(d.file));
    if (r && r.sink && !r.failed && !r.done && !r.have[d.index] && sender === r.from && d.count === r.man.chunks) {
      const opening = r.cipher.open(d.index, d.final, d.sealed);
      opening.catch(() => {});
      return opening;
    }
    return null;
  }

  // ---- the relay as a source ----------------------------------------------

  /** A manifest from the relay. */
  async relayManifest(from, file, chunks, sealed) {
    const man = await this.d.keys.openManifest({ sender: from, file, chunks }, sealed);
    // A replayed or repeated announcement is dropped (its chunks are acked
    // and dropped as those of an unknown file).
    const stamp = { sess: man.sess, seq: man.seq, ts: man.ts };
    if (!validStamp(stamp)) { console.warn('cloakroom: a file announcement without a valid stamp was dropped'); return; }
    const j = this.d.judge(from, stamp);
    if (j.verdict === Verdict.DUPLICATE) return;
    if (j.verdict === Verdict.REPLAYED) { console.warn('cloakroom: a file announcement sealed before we joined was dropped (a replay by the server?)'); return; }
    await this._startRecv(man, from, Path.RELAY, null, sealed);
    const r = this._recvs.get(man.file);
    await r?.ready;
    if (r && r.sink && !r.failed && this.d.swarm) this.d.swarm.fetch(r, sealed);
  }

  /** Parses a relay chunk frame as it arrives and starts opening it (the
   * session's pump still takes frames in order, through relayChunk). */
  preopenRelay(buf) {
    const e = { d: null, err: null, opening: null };
    try { e.d = P.parseChunkDown(new Uint8Array(buf)); } catch (x) { e.err = x; return e; }
    e.opening = this._preopenChunk(e.d, C.uuidString(e.d.sender));
    return e;
  }

  /** A relay chunk frame (preopenRelay's result): its item is acked once
   * the chunk is handled. */
  async relayChunk(e) {
    if (e.err) { console.warn('cloakroom: malformed frame from the server:', e.err.message); return; }
    const d = e.d;
    const r = this._recvs.get(C.uuidString(d.file));
    if (r) r.relayAt = performance.now(); // the relay still brings it (swarm.js stalls)
    await this._takeChunk(r, d, C.uuidString(d.sender), e.opening, () => this.d.ack(d.item));
  }

  // ---- any source to the sink -----------------------------------------------

  /** Verifies and writes one chunk of r (from any path); after() runs once
   * the chunk is handled — written, a duplicate, or refused (the relay acks
   * its item then). */
  async _takeChunk(r, d, sender, opening, after, check = null) {
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
    if (check) { // from a holder other than the origin: its hash first (docs/PROTOCOL.md)
      const v = await check(d.index, plain.subarray(0, want));
      if (v !== true || r.failed || r.have[d.index]) { after(); return v === false ? 'bad' : false; }
    }
    // The write runs while the next chunks are opened; a relay item is
    // acked once its bytes are written (docs/PROTOCOL.md: "verified and written").
    r.have[d.index] = 1;
    r.got++;
    const last = r.got === r.man.chunks;
    r.sink.write(d.index * cs, plain.subarray(0, want)).then(() => {
      r.disk[d.index] = 1;
      this.d.swarm?.wrote(r, d.index);
      after();
      r.written++;
      r.t.bytes += want;
      if (!last) {
        // A peer-to-peer sender hears of progress every 64 chunks (as from Go).
        if (r.written % 64 === 0) this._toOrigin(r)?.notify({ kind: P.DC_PROGRESS, file: C.uuidBytes(r.man.file), chunks: r.written });
        // Progress is drawn at most every 100 ms (app.js): an event per chunk was work for nothing.
        const now = performance.now();
        if (!(now - r.shown < PROGRESS_MS)) {
          r.shown = now;
          this._emit('transfer', { transfer: r.t });
        }
      }
    }, (e) => {
      after();
      this._failRecv(r, 'could not write the file: ' + e.message);
    });
    if (last) await this._finishRecv(r);
    return true;
  }

  /** The link to r's origin, for its progress and verdict (none: no word). */
  _toOrigin(r) { return this.d.swarm?.link(r.from) ?? r.peer; }

  async _finishRecv(r) {
    try {
      const sum = await r.sink.finish(); // after every write, in order
      if (r.failed) return;
      if (sum !== r.man.sha256) return this._failRecv(r, `SHA-256 mismatch: got ${sum.slice(0, 12)}…, the sender says ${r.man.sha256.slice(0, 12)}…`);
      const f = await r.sink.file();
      r.done = true;
      clearTimeout(r.vanishTimer);
      r.t.sha256 = sum;
      r.t.file = new File([f], safeName(r.man.name), { type: safeType(r.man.type) });
      r.t.state = 'done';
      r.t.error = '';
      r.t.finished = performance.now();
      if (this._toOrigin(r)) this._notifyDone(r, this._toOrigin(r), false, '');
      this.d.swarm?.finished(r);
      // A sender that skipped chunks cannot learn delivery from the relay.
      if (r.resumed) this._sendHave(r.from, r.man.file, { done: true });
      this._emit('transfer', { transfer: r.t });
    } catch (e) {
      this._failRecv(r, e.message);
    }
  }

  /** Ends reception r: failed (msg), or opts.state (cancelled, declined).
   * Its partial file is removed; the origin hears opts.reason (or msg)
   * unless vanished or opts.notify is false; opts.restart lets a new offer
   * of the same file start it again. */
  _failRecv(r, msg, vanished = false, opts = {}) {
    if (r.failed) return;
    r.failed = true;
    r.vanished = vanished;
    r.restart = !!opts.restart;
    r.offered = false;
    clearTimeout(r.vanishTimer);
    r.vanishTimer = 0;
    r.t.state = opts.state || 'failed';
    r.t.error = msg;
    r.t.refusal = '';
    r.t.finished = performance.now();
    r.sink?.abort();
    this.d.swarm?.finished(r);
    if (this._toOrigin(r) && !vanished && opts.notify !== false) this._notifyDone(r, this._toOrigin(r), true, opts.reason || msg);
    this._emit('transfer', { transfer: r.t });
  }

  _notifyDone(r, peer, failed, reason) {
    peer.notify({ kind: P.DC_DONE, file: C.uuidBytes(r.man.file), failed, reason: String(reason).slice(0, 200) });
  }

  // ---- a peer-to-peer session as a source ----------------------------------

  /** An answering session (p2p.js): once both keys are confirmed it is a
   * link (swarm.js) — it may carry a file to us, or ask for ours. */
  onOffer(peer) {
    peer.handler = (b) => this.dcIn(peer, b);
    peer.onend = (err) => this._peerEnded(peer, err);
    peer.ready.then(() => this.d.swarm.attach(peer), () => {});
  }

  /** A message from a link: a manifest, a chunk frame or a swarm message.
   * All go through the pump, in order, like relay frames. */
  dcIn(peer, b) {
    if (b[0] === P.FRAME_VERSION) {
      let d;
      try { d = P.parseChunkUp(b); } catch (e) { return peer.fail(new Error('malformed chunk from the sender: ' + e.message)); }
      const r = this._recvs.get(C.uuidString(d.file));
      this.d.enqueue({ dc: true, peer, d, opening: r ? this._preopenChunk(d, r.from) : null });
      return;
    }
    let m;
    try { m = P.parseDC(b); } catch { m = null; }
    if (!m || m.kind === P.DC_CONFIRM) return peer.fail(new Error('unexpected message from ' + peer.member.slice(0, 8)));
    if (m.kind === P.DC_MANIFEST) this.d.enqueue({ dc: true, peer, manifest: m });
    else this.d.enqueue({ dc: true, peer, ctl: m });
  }

  /** A message of a link, queued by dcIn, in order with relay frames. */
  async peerItem(e) {
    const { peer } = e;
    if (e.ctl) return this.d.swarm.message(peer, e.ctl);
    if (e.manifest) {
      const m = e.manifest;
      let man;
      try {
        man = await this.d.keys.openManifest({ sender: peer.member, file: C.uuidString(m.file), chunks: m.chunks }, m.sealed);
      } catch (x) {
        return peer.fail(new Error('the manifest failed to open: ' + x.message));
      }
      try {
        await this._startRecv(man, peer.member, peer.path, peer, m.sealed);
      } catch (x) {
        peer.notify({ kind: P.DC_DONE, file: m.file, failed: true, reason: x.message.slice(0, 200) });
        return;
      }
      const r = this._recvs.get(man.file);
      await r?.ready;
      if (r && r.sink && !r.failed) this.d.swarm.fetch(r, m.sealed);
      return;
    }
    const r = this._recvs.get(C.uuidString(e.d.file));
    const ent = r && this.d.swarm.entries.get(r.man.file);
    if (!r || !ent) return; // not a file we fetch: unsolicited
    const from = peer.member;
    if (ent.peers.get(from)?.bad) return;
    // From the origin as always; from another holder, checked against the origin's hashes first.
    const check = from === r.from ? null : (i, plain) => ent.hl.check(i, plain);
    if (!r.t.path) r.path = r.t.path = peer.path; // a library fetch: the path of its first chunk
    const ok = await this._takeChunk(r, e.d, r.from, e.opening, () => {}, check);
    if (ok === 'bad') this.d.swarm.badChunk(ent, from, e.d.index);
    this.d.swarm.delivered(ent, from, e.d.index, ok === true);
  }

  /** A fetch no holder could serve for a while (swarm.js): it fails, and a
   * later announcement of the file starts it again. */
  noSource(r) {
    this._failRecv(r, 'no member who has it could be reached (a file stays available while a member who has it is online)', true);
  }

  /** A file announced by a lib signal (library.js): the origin's manifest,
   * fetched from its holders. Returns the reception. */
  async libEntry(man, origin, env) {
    const old = this._recvs.get(man.file);
    if (!old || (old.failed && old.vanished)) await this._startRecv(man, origin, '', null, env);
    const r = this._recvs.get(man.file);
    await r?.ready;
    if (r && r.sink && !r.failed) this.d.swarm.fetch(r, env);
    return r;
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
      this._emit('transfer', { transfer: r.t });
      if (!this.d.members.get(r.from)?.online) { this._failRecv(r, r.vanishMsg + '; the sender is offline', true); continue; }
      r.vanishTimer = setTimeout(() => { r.vanishTimer = 0; this._failRecv(r, r.vanishMsg + '; it did not resume', true); }, VANISH_MS);
    }
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
