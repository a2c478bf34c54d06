// The room library and swarm (protocol v4, docs/PROTOCOL.md "Links and
// data-channel messages"): every file this page shares or receives is an
// entry it can serve, wholly or partly, to any member it has a link with (a
// confirmed peer session, whoever offered it); a fetcher pulls chunks from
// every holder it knows (want), the origin by `any` and the others by index,
// rarest first, and checks a chunk from anyone but the origin against the
// origin's hash list before it is written. Nothing is pushed unasked.
//
// An entry: {id, fid, origin, chunks, size, chunkSize, env (the origin's
// sealed manifest), man, hl (HashList), held (chunks on hand), complete,
// read(i) -> the chunk's plaintext padded to chunkSize, cipher (sealing as
// the origin did), peers: member -> {have, complete, sent, out, anyOut,
// bad, last}, out: index -> member (our outstanding wants), r (our reception,
// when fetching), helpers (members that delivered chunks), t (the transfer)}.
import * as C from './crypto.js';
import * as P from './protocol.js';
import { HashList, pieceCount } from './hashes.js';
import { haveRanges } from './receiver.js';
import { prefetch, readChunk, padded } from './chunk-read.js';

// Outstanding wants to the origin (by `any`): 8 MiB, what a bare channel
// keeps queued (HIGH_WATER in p2p.js); the chunks in flight, queued at the
// origin and waiting here all count, so a smaller window starves a fast
// channel. Asked again once ORIGIN_REFILL are free (fewer, larger wants).
const ORIGIN_WINDOW = 128;
const ORIGIN_REFILL = 32;
const PEER_WINDOW = 32;    // outstanding wants to any other holder (by index)
const HAVE_BATCH = 16;     // chunks written before a have update goes out…
const HAVE_DELAY_MS = 100; // …or this long after the first of them
const STALL_MS = 5000;     // a source that sent nothing of what it owes for this long is asked again
const RELINK_MS = 5000;    // a holder with no link is offered one again this often while a fetch waits
const NO_SOURCE_MS = 30000; // a fetch with no reachable holder for this long fails (a later announcement starts it again)
const SERVE_BATCH = 64;    // chunks read (one slice per run of consecutive chunks) and sealed together while serving
// Watching while it arrives (stream.js): a player reading at chunk c makes
// [c, c + FOCUS_WINDOW) the first chunks asked, by index, from whoever holds
// them, and keeps at most FOCUS_ORIGIN_WINDOW wants outstanding at the
// origin, so that after a seek (a cancel, then new wants) what the origin
// had queued costs well under a second on a 20–30 Mbit/s uplink.
// A file this page may play while it arrives is focused on chunk 0 from
// its start (room.playable(manifest)), so it never has more than that
// outstanding at the origin and is fetched in order.
const FOCUS_WINDOW = 64;        // chunks (≈ 4 MiB)
const FOCUS_ORIGIN_WINDOW = 16; // outstanding wants to the origin while focused (≈ 1 MiB)
const FOCUS_REFILL = 6;         // …asked again once this many are free
const short = (id) => String(id).slice(0, 8);

export class Swarm {
  /** room provides: id, keys, emit(type, detail), p2p (offer). */
  constructor(room) {
    this.room = room;
    this.entries = new Map(); // file id -> entry
    this._links = new Map();  // member -> Set<Peer> (confirmed sessions)
    this._verdicts = new Map(); // file + member -> callback(DC message) (the origin's sends)
    this._haveQ = new Map();  // file id -> [indices] written since the last have update
    this._haveTimer = 0;
    this.log = [];            // what went wrong with a source (shown in the console, read by tests)
    this._stallTimer = setInterval(() => this._checkStalls(), 1000);
    this._written = new Map(); // file id -> Set<fn(index)>: told of every chunk written (stream.js)
  }

  // ---- focus (watching while it arrives) -------------------------------------

  /** A player (key) reads file id at chunk c: the chunks from c on are asked
   * first. A position neither here nor asked (a seek) cancels every want
   * outstanding for the file, so the holders' queues do not delay it. */
  focus(id, key, c) {
    const e = this.entries.get(id);
    if (!e || !e.r || e.r.done || e.r.failed || c < 0 || c >= e.chunks) return;
    e.focusBy ??= new Map();
    const prev = e.focusBy.get(key);
    e.focusBy.delete(key);
    e.focusBy.set(key, c); // most recent last
    if (prev === c) return;
    // A seek, or a first player while more is asked of the origin than a
    // focused fetch keeps outstanding: start afresh.
    const o = e.peers.get(e.origin);
    const first = e.focusBy.size === 1 && prev === undefined;
    if ((!e.r.have[c] && !e.out.has(c)) || (first && o && o.out.size + o.anyOut > FOCUS_ORIGIN_WINDOW)) {
      if (globalThis.__streamDebug) console.info(`stream ${performance.now().toFixed(0)}: chunk ${c}: wants cancelled`);
      this._cancelAll(e);
    }
    this.plan(e);
  }

  /** The player key stopped reading file id (its range was dropped). */
  unfocus(id, key) {
    const e = this.entries.get(id);
    if (!e?.focusBy?.delete(key)) return;
    this.plan(e);
  }

  /** fn(i) hears of every chunk of file id written; returns its remover. */
  onWritten(id, fn) {
    if (!this._written.has(id)) this._written.set(id, new Set());
    const set = this._written.get(id);
    set.add(fn);
    return () => { set.delete(fn); if (!set.size) this._written.delete(id); };
  }

  /** A live link to member in one of modes, if any. */
  linkFor(member, modes) {
    for (const p of this._links.get(member) || []) if (!p.err && modes.includes(p.mode)) return p;
    return null;
  }

  /** A live link to member, if any. */
  link(member) {
    for (const p of this._links.get(member) || []) if (!p.err) return p;
    return null;
  }

  // ---- entries ------------------------------------------------------------

  _newEntry(man, origin, env) {
    const e = {
      id: man.file, fid: C.uuidBytes(man.file), origin, chunks: man.chunks, size: man.size, chunkSize: man.chunkSize,
      env, man, hl: new HashList(man), held: new Uint8Array(man.chunks), complete: false, read: null, cipher: null,
      peers: new Map(), out: new Map(), sentAny: new Uint8Array(man.chunks), anyCursor: 0, r: null, helpers: new Set(), t: null,
      added: Date.now(),
    };
    this.entries.set(man.file, e);
    return e;
  }

  /** A file this page shares (the sender's job): it holds every chunk. */
  async addOrigin(job, chunkHashes) {
    const { man, key, sealed, file, t } = job;
    const e = this._newEntry(man, this.room.id, sealed);
    await e.hl.fill(chunkHashes);
    e.held.fill(1);
    e.complete = true;
    e.t = t;
    e.cipher = await C.newChunkCipher(key, this.room.keys.roomID, this.room.id, e.fid, man.chunks, man.size);
    e.blob = () => file;
    e.read = (i) => readChunk(e, i, file);
    return e;
  }

  /** A reception (receiver.js) starts or continues: its entry fetches. */
  fetch(r, env) {
    let e = this.entries.get(r.man.file);
    if (!e) e = this._newEntry(r.man, r.from, env);
    e.env ??= env;
    e.r = r;
    e.t = r.t;
    e.sequential = !!this.room.sequential;
    if (!e.focusBy && this.room.playable?.(r.man)) e.focusBy = new Map([['start', 0]]);
    e.cipher = r.cipher;
    e.blob = () => (r.done ? r.t.file : null);
    e.read = async (i) => {
      if (r.done && r.t.file) return readChunk(e, i, r.t.file);
      if (!r.sink?.read) throw new Error('this storage cannot be read back before the file is complete');
      return padded(await r.sink.read(i * e.chunkSize, Math.min(e.chunkSize, e.size - i * e.chunkSize)), e.chunkSize);
    };
    for (let i = 0; i < e.chunks; i++) if (r.disk[i]) e.held[i] = 1;
    const o = this._peerState(e, e.origin); // the origin holds every chunk
    o.complete = true;
    o.have.fill(1);
    // Ask every linked member for the hash pieces we lack (the origin sends them unasked).
    for (const m of this._links.keys()) this._askPieces(e, m);
    this.room.onFetching?.(e);
    this.plan(e);
    return e;
  }

  /** Our reception wrote chunk i: it can be served, and every link hears of it. */
  wrote(r, i) {
    for (const fn of this._written.get(r.man.file) || []) fn(i);
    const e = this.entries.get(r.man.file);
    if (!e) return;
    if (!r.sink?.read) return this.plan(e); // a storage that cannot be read back serves once complete
    e.held[i] = 1;
    const q = this._haveQ.get(e.id) || [];
    q.push(i);
    this._haveQ.set(e.id, q);
    if (q.length >= HAVE_BATCH) this._flushHaves();
    else if (!this._haveTimer) this._haveTimer = setTimeout(() => this._flushHaves(), HAVE_DELAY_MS);
    this.plan(e);
  }

  /** Our reception finished (verified, or failed). */
  finished(r) {
    const e = this.entries.get(r.man.file);
    if (!e) return;
    this._flushHaves();
    if (r.failed) { e.held.fill(0); e.read = null; } // its partial file is gone
    if (r.done) {
      e.held.fill(1);
      e.complete = true;
      this._broadcast(e, P.HAVE_FULL | P.HAVE_COMPLETE, [[0, e.chunks]]);
    }
    this._cancelAll(e);
  }

  _flushHaves() {
    clearTimeout(this._haveTimer);
    this._haveTimer = 0;
    for (const [id, q] of this._haveQ) {
      const e = this.entries.get(id);
      if (!e || !q.length) continue;
      const bits = new Uint8Array(e.chunks);
      for (const i of q) bits[i] = 1;
      this._broadcast(e, 0, haveRanges(bits));
    }
    this._haveQ.clear();
  }

  _broadcast(e, flags, ranges) {
    for (const m of this._links.keys()) this.link(m)?.notify({ kind: P.DC_HAVE, file: e.fid, flags, ranges });
  }

  /** What this page holds of e, as a full have. */
  _fullHave(e) {
    const ranges = e.complete ? [[0, e.chunks]] : haveRanges(e.held);
    return { kind: P.DC_HAVE, file: e.fid, flags: P.HAVE_FULL | (e.complete ? P.HAVE_COMPLETE : 0), ranges };
  }

  // ---- links ---------------------------------------------------------------

  /** A confirmed session becomes a link: its messages come here (through
   * the room's in-order pump), and it hears what we hold. announce (an
   * entry of ours) first gets its manifest and hash pieces (the origin's
   * send). */
  async attach(peer, announce = null) {
    if (!this._links.has(peer.member)) this._links.set(peer.member, new Set());
    const set = this._links.get(peer.member);
    if (!set.has(peer)) {
      set.add(peer);
      peer.handler = (b) => this.room.receiver.dcIn(peer, b);
      peer.ended.then(() => this._linkEnded(peer));
    }
    if (announce) {
      const e = announce;
      await peer.send(P.dcMessage({ kind: P.DC_MANIFEST, file: e.fid, chunks: e.chunks, sealed: e.env }));
      for (let p = 0; p < e.hl.pieces; p++) await peer.send(P.dcMessage({ kind: P.DC_HASHES, file: e.fid, piece: p, hashes: e.hl.piece(p) }));
      await peer.send(P.dcMessage(this._fullHave(e)));
    }
    for (const e of this.entries.values()) {
      this.plan(e);
      if (e === announce || !e.read) continue;
      if (e.held.some((x) => x)) peer.notify(this._fullHave(e));
      if (e.r && !e.r.done) this._askPieces(e, peer.member);
    }
  }

  _linkEnded(peer) {
    const set = this._links.get(peer.member);
    set?.delete(peer);
    if (this.link(peer.member)) return;
    this._links.delete(peer.member);
    for (const e of this.entries.values()) {
      const ps = e.peers.get(peer.member);
      if (!ps) continue;
      this._dropOutstanding(e, peer.member, ps);
      this.plan(e);
    }
  }

  _peerState(e, member) {
    let ps = e.peers.get(member);
    if (!ps) {
      ps = { have: new Uint8Array(e.chunks), complete: false, sent: new Uint8Array(e.chunks), out: new Set(), anyOut: 0, bad: false, last: performance.now(), queued: 0 };
      e.peers.set(member, ps);
    }
    return ps;
  }

  /** The origin's send waits for a recipient's progress and verdict. */
  onVerdict(file, member, fn) {
    const k = file + '/' + member;
    this._verdicts.set(k, fn);
    return () => { if (this._verdicts.get(k) === fn) this._verdicts.delete(k); };
  }

  /** A control message from a link (in order, from the room's pump). */
  async message(peer, m) {
    const id = C.uuidString(m.file);
    if (m.kind === P.DC_PROGRESS || m.kind === P.DC_DONE) {
      this._verdicts.get(id + '/' + peer.member)?.(m);
      return;
    }
    const e = this.entries.get(id);
    if (!e) return; // a file we do not know (yet): its lib signal may follow
    const ps = this._peerState(e, peer.member);
    switch (m.kind) {
      case P.DC_HAVE:
        if (m.flags & P.HAVE_FULL) ps.have.fill(0);
        if (m.flags & P.HAVE_COMPLETE) { ps.complete = true; ps.have.fill(1); }
        for (const [lo, hi] of m.ranges) if (lo < e.chunks) ps.have.fill(1, lo, Math.min(hi, e.chunks));
        return this.plan(e);
      case P.DC_WANT: return this._want(peer, e, ps, m);
      case P.DC_HASH_REQ: {
        const piece = e.hl.piece(m.piece);
        if (piece) peer.send(P.dcMessage({ kind: P.DC_HASHES, file: e.fid, piece: m.piece, hashes: piece })).catch(() => {});
        return;
      }
      case P.DC_HASHES:
        if (!e.hl.known[m.piece] && !(await e.hl.setPiece(m.piece, m.hashes))) this._bad(e, peer.member, `hash piece ${m.piece} does not match the manifest`);
        return this.plan(e);
      case P.DC_CANCEL:
        peer._serveQ = (peer._serveQ || []).filter((x) => x.e !== e);
        ps.queued = 0;
        return;
    }
  }

  /** The origin cancelled its send to member (control.js): e is no longer
   * served to it (what its links had queued is dropped). */
  refuse(e, member) {
    if (!e) return;
    (e.refused ||= new Set()).add(member);
    for (const p of this._links.get(member) || []) if (p._serveQ) p._serveQ = p._serveQ.filter((x) => x.e !== e);
    const ps = e.peers.get(member);
    if (ps) ps.queued = 0;
  }

  unrefuse(e, member) { e?.refused?.delete(member); }

  // ---- serving ---------------------------------------------------------------

  /** Queues the chunks a want asks for (those held; at most
   * MAX_OUTSTANDING_WANTS of one file per link), then serves them in order. */
  _want(peer, e, ps, m) {
    if (e.withdrawn || e.refused?.has(peer.member)) {
      // Its origin cancelled it (for everyone, or for this member): a member
      // that still asks never heard so (the sealed cancel was lost on the
      // way, or came before anything told it of the file), and would ask
      // forever. It hears it again.
      if (e.origin === this.room.id) this.room.sender?.stillCancelled(e.id, peer.member);
      return;
    }
    if (!e.read) return;
    const q = peer._serveQ ||= [];
    const room = () => ps.queued < P.MAX_OUTSTANDING_WANTS;
    for (const i of m.indices) {
      if (!room()) break;
      if (i < e.chunks && e.held[i]) { q.push({ e, i, ps }); ps.queued++; ps.sent[i] = 1; }
    }
    for (let n = 0; n < m.any && room(); n++) {
      const i = this._pickAny(e, ps);
      if (i < 0) break;
      q.push({ e, i, ps }); ps.queued++; ps.sent[i] = 1; e.sentAny[i] = 1;
    }
    this._serve(peer);
  }

  /** A chunk of the holder's choice: one never sent to anyone (lowest
   * first), else the lowest the asker lacks and was not sent. -1 if none. */
  _pickAny(e, ps) {
    while (e.anyCursor < e.chunks && e.sentAny[e.anyCursor]) e.anyCursor++;
    const relayed = ps.relayed; // chunks the relay brings it (relay first): never picked
    for (let i = e.anyCursor; i < e.chunks; i++) if (e.held[i] && !e.sentAny[i] && !ps.have[i] && !relayed?.[i]) return i;
    for (let i = 0; i < e.chunks; i++) if (e.held[i] && !ps.have[i] && !ps.sent[i] && !relayed?.[i]) return i;
    return -1;
  }

  /** Relay first (sender.js RelayLeg): the relay brings member the chunks
   * set in relayed; its "any" wants never get them (asked by index, they
   * are served: the relay lost them, or is slow). */
  relaying(e, member, relayed) {
    this._peerState(e, member).relayed = relayed;
  }

  async _serve(peer) {
    if (peer._serving) return;
    peer._serving = true;
    try {
      while (peer._serveQ?.length && !peer.err) {
        const batch = peer._serveQ.splice(0, SERVE_BATCH);
        await prefetch(batch);
        const frames = await Promise.all(batch.map(async ({ e, i }) => {
          try {
            return P.chunkUpFrame(e.fid, i, e.chunks, await e.cipher.seal(i, await e.read(i)));
          } catch (x) {
            console.warn(`cloakroom: could not serve chunk ${i} of ${e.man.name}:`, x.message);
            return null;
          }
        }));
        for (let k = 0; k < batch.length; k++) {
          batch[k].ps.queued = Math.max(0, batch[k].ps.queued - 1);
          if (!frames[k]) continue;
          await peer.send(frames[k]);
          const { e, i } = batch[k];
          e.served = (e.served || 0) + Math.min(e.chunkSize, e.size - i * e.chunkSize); // plaintext bytes sent on links
        }
      }
    } catch { /* the link ended: the fetcher asks elsewhere */ } finally {
      peer._serving = false;
    }
  }

  // ---- fetching --------------------------------------------------------------

  _askPieces(e, member) {
    const l = this.link(member);
    if (!l || !e.r || e.hl.complete) return;
    e.asked ??= new Set();
    for (const p of e.hl.missing()) {
      if (e.asked.has(member + '/' + p)) continue; // once per holder (the origin sends them unasked)
      e.asked.add(member + '/' + p);
      l.notify({ kind: P.DC_HASH_REQ, file: e.fid, piece: p });
    }
  }

  /** A chunk of e came from member (taken, a duplicate or refused). */
  delivered(e, member, i, ok) {
    const ps = e.peers.get(member);
    if (ps) {
      ps.last = performance.now();
      if (ps.out.delete(i)) { if (e.out.get(i) === member) e.out.delete(i); } else if (member === e.origin && ps.anyOut > 0) ps.anyOut--;
    }
    if (ok) {
      e.helpers.add(member);
      if (e.t) e.t.helpers = e.helpers.size;
    }
    this.plan(e);
  }

  /** A holder served a chunk that does not match the origin's hash: it is
   * no source any more. */
  _bad(e, member, why) {
    const ps = this._peerState(e, member);
    if (ps.bad) return;
    ps.bad = true;
    const msg = `${e.man.name}: dropped ${short(member)} as a source: ${why}`;
    this.log.push(msg);
    console.warn('cloakroom:', msg);
    this.link(member)?.notify({ kind: P.DC_CANCEL, file: e.fid });
    this._dropOutstanding(e, member, ps);
    this.plan(e);
  }

  badChunk(e, member, i) { this._bad(e, member, `chunk ${i} does not match its hash`); }

  _dropOutstanding(e, member, ps) {
    for (const i of ps.out) if (e.out.get(i) === member) e.out.delete(i);
    ps.out.clear();
    ps.anyOut = 0;
  }

  _cancelAll(e) {
    for (const [m, ps] of e.peers) {
      if (ps.out.size || ps.anyOut) this.link(m)?.notify({ kind: P.DC_CANCEL, file: e.fid });
      this._dropOutstanding(e, m, ps);
    }
  }

  _checkStalls() {
    const now = performance.now();
    for (const e of this.entries.values()) {
      if (!e.r || e.r.done || e.r.failed) continue;
      // No holder linked (and no relay or session delivering it): links
      // that failed (a busy machine, a lost offer) are offered again, and
      // the fetch gives up after a while.
      const reachable = e.r.peer || e.r.path === P.Path.RELAY || [...e.peers].some(([m, ps]) => !ps.bad && this.link(m));
      if (reachable) {
        e.lonely = 0;
        // The origin online but not linked: linked again too. Other holders
        // may have nothing left to give (a copy dropped, a cancel), and only
        // the origin answers for its file (it may tell us it was cancelled).
        if (!e.r.peer && e.r.path !== P.Path.RELAY && !this.link(e.origin)) this._relink(e, now, e.origin);
      } else {
        this._relink(e, now);
        if (!e.lonely) e.lonely = now;
        else if (now - e.lonely > NO_SOURCE_MS) {
          e.lonely = 0;
          this.room.receiver.noSource(e.r);
          continue;
        }
      }
      // Relay first: while the relay still brings chunks, the origin's
      // unfilled `any` means the rest is on its way there; asked by index
      // they would come twice (docs/PROTOCOL.md, relay first).
      const relaying = e.r.relayAt && now - e.r.relayAt < STALL_MS;
      for (const [m, ps] of e.peers) {
        if (relaying && m === e.origin && !ps.out.size && ps.anyOut) { ps.last = now; continue; }
        if ((ps.out.size || ps.anyOut) && now - ps.last > STALL_MS) {
          // An `any` the holder could not fill (it believes it sent us
          // everything): ask it by index from now on.
          if (ps.anyOut) ps.explicit = true;
          this._dropOutstanding(e, m, ps);
          ps.last = now;
        }
      }
      this.plan(e);
    }
  }

  /** Links again to the online holders of e (only to `only`, if given), at
   * most every RELINK_MS each. */
  _relink(e, now, only = null) {
    const lib = this.room.library;
    if (!lib) return;
    for (const [m, ps] of e.peers) {
      if ((only && m !== only) || ps.bad || m === this.room.id || this.link(m)) continue;
      const mem = this.room.members?.get(m);
      if (!mem?.online || !mem.verified) continue;
      if (ps.relinked && now - ps.relinked < RELINK_MS) continue;
      ps.relinked = now;
      lib.link(m);
    }
  }

  /** Plans the next wants of a fetching entry (soon, once per turn). */
  plan(e) {
    if (!e.r || e.r.done || e.r.failed || e._planned) return;
    e._planned = true;
    queueMicrotask(() => { e._planned = false; this._plan(e); });
  }

  _plan(e) {
    const r = e.r;
    if (!r || r.done || r.failed) return;
    const sources = [];
    for (const [m, ps] of e.peers) {
      const l = this.link(m);
      if (l && !ps.bad) sources.push({ m, ps, l });
    }
    if (!sources.length) return;
    const others = sources.filter((s) => s.m !== e.origin && e.hl.complete);
    const lack = (i) => !r.have[i] && !e.out.has(i);
    // The players' windows (the most recent first): asked before anything else.
    const foci = e.focusBy?.size ? [...e.focusBy.values()].reverse() : [];
    const win = [];
    for (const c of foci) for (let i = c; i < Math.min(e.chunks, c + FOCUS_WINDOW); i++) if (lack(i) && !win.includes(i)) win.push(i);
    // Explicit wants to the holders other than the origin: the window by
    // index, then the rarest chunk first.
    for (const s of others) {
      const free = PEER_WINDOW - s.ps.out.size;
      if (free < Math.min(8, PEER_WINDOW)) continue;
      const first = win.filter((i) => lack(i) && s.ps.have[i]).slice(0, free);
      const inWin = new Set(first);
      const cand = [];
      for (let i = 0; i < e.chunks; i++) if (lack(i) && s.ps.have[i] && !inWin.has(i)) cand.push(i);
      if (!cand.length && !first.length) continue;
      if (!e.sequential) {
        const rarity = (i) => others.reduce((n, o) => n + o.ps.have[i], 0);
        const score = new Map(cand.map((i) => [i, rarity(i) + Math.random() * 0.5]));
        cand.sort((a, b) => score.get(a) - score.get(b));
      }
      const pick = first.concat(cand.slice(0, free - first.length));
      for (const i of pick) { e.out.set(i, s.m); s.ps.out.add(i); }
      s.ps.last = s.ps.out.size === pick.length ? performance.now() : s.ps.last;
      s.l.notify({ kind: P.DC_WANT, file: e.fid, any: 0, indices: pick });
    }
    // The origin: `any` for the chunks no other source has.
    const o = sources.find((s) => s.m === e.origin);
    if (!o) return;
    if (foci.length) return this._planFocused(e, o, others, win, foci[0], lack);
    const free = ORIGIN_WINDOW - o.ps.out.size - o.ps.anyOut;
    if (free < ORIGIN_REFILL && !(free > 0 && o.ps.out.size + o.ps.anyOut === 0)) return;
    const only = [];
    for (let i = 0; i < e.chunks && only.length < free + o.ps.anyOut; i++) {
      if (lack(i) && !others.some((s) => s.ps.have[i])) only.push(i);
    }
    const n = Math.min(free, only.length - o.ps.anyOut);
    if (n <= 0) return;
    if (o.ps.out.size + o.ps.anyOut === 0) o.ps.last = performance.now();
    if (e.sequential || o.ps.explicit) {
      const pick = only.slice(0, n);
      for (const i of pick) { e.out.set(i, o.m); o.ps.out.add(i); }
      o.l.notify({ kind: P.DC_WANT, file: e.fid, any: 0, indices: pick });
    } else {
      o.ps.anyOut += n;
      o.l.notify({ kind: P.DC_WANT, file: e.fid, any: n, indices: [] });
    }
  }

  /** The origin's wants while a player reads e: by index, the windows
   * first, then the chunks no other source has from the newest focus c on
   * (wrapping to the start), at most FOCUS_ORIGIN_WINDOW outstanding. */
  _planFocused(e, o, others, win, c, lack) {
    const free = FOCUS_ORIGIN_WINDOW - o.ps.out.size - o.ps.anyOut;
    if (free < FOCUS_REFILL && !(free > 0 && o.ps.out.size + o.ps.anyOut === 0)) return;
    const pick = win.filter(lack).slice(0, free);
    for (let k = 0; k < e.chunks && pick.length < free; k++) {
      const i = (c + k) % e.chunks;
      if (lack(i) && !others.some((s) => s.ps.have[i]) && !pick.includes(i)) pick.push(i);
    }
    if (!pick.length) return;
    if (o.ps.out.size + o.ps.anyOut === 0) o.ps.last = performance.now();
    for (const i of pick) { e.out.set(i, o.m); o.ps.out.add(i); }
    o.l.notify({ kind: P.DC_WANT, file: e.fid, any: 0, indices: pick });
  }

  close() { clearInterval(this._stallTimer); clearTimeout(this._haveTimer); }
}

export { pieceCount };
