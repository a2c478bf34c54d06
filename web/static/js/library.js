// The room's library and recent chat for members who join later (protocol
// v4, docs/PROTOCOL.md "Signals" lib/hist and "What a newcomer sees"): this
// page keeps the last HISTORY_LENGTH chat envelopes it saw or sent, exactly
// as their authors sealed them, and its library (swarm.js entries). When a
// member's presence is verified it gets a `lib` signal per entry (newest
// first, at most LIBRARY_ANNOUNCE) and the chat as `hist` signals; a `lib`
// adds the entry here, notes its author as a holder, and starts fetching it
// from the holders, linking to them as a sender does (direct, then TURN).
// Nothing is kept on the server, and nothing outlives this page.
import * as C from './crypto.js';
import * as P from './protocol.js';
import { Signal, ladder } from './protocol.js';
import { validStamp } from './order.js';
import { haveRanges } from './receiver.js';

const LINK_TIMEOUT_MS = 10000; // each rung, as a send's
const short = (id) => String(id).slice(0, 8);

export class Library {
  /** room provides: id, keys, members, transport, p2p, swarm, receiver,
   * emit, _seen (envelope ids handled). */
  constructor(room) {
    this.room = room;
    this.chat = [];          // {from, env (base64url), ts}, oldest first
    this._linking = new Map(); // member -> promise of a link being made
    this._kept = 0;            // chat envelopes kept so far (numbered)
    this._marks = new Map();   // member -> _kept when we learned it is here (challenged it)
  }

  /** A chat envelope seen or sent (base64url of the sealed bytes). */
  keepChat(from, env, ts) {
    this.chat.push({ from, env, ts, n: ++this._kept });
    if (this.chat.length > P.HISTORY_LENGTH) this.chat.shift();
  }

  /** We challenge member (it is here): the chat it may get as history ends here. */
  mark(member) { this._marks.set(member, this._kept); }

  /** A member's presence was just verified: it gets our library and chat. */
  greet(member) {
    const send = (body) => this.room.p2p.sendSignal(member, body).catch((e) => console.info('cloakroom: could not tell a member about the room:', e.message));
    const entries = [...this.room.swarm.entries.values()].filter((e) => e.env && e.read && !e.r?.failed && !e.withdrawn)
      .sort((a, b) => b.added - a.added).slice(0, P.LIBRARY_ANNOUNCE);
    for (const e of entries) if (e.origin !== member) send(this._lib(e));
    // Oldest first, in signals kept under the signal limit.
    // Only what we had when we learned it is here: what came after reached
    // it live (in the history too, it would show as "earlier" when the
    // signal wins the race).
    const mark = this._marks.get(member) ?? Infinity;
    const items = [...this.chat].sort((a, b) => a.ts - b.ts).filter((x) => x.from !== member && x.n <= mark);
    let batch = [], size = 0;
    for (const it of items) {
      const n = it.env.length + it.from.length + 24;
      if (batch.length && size + n > P.MAX_SIGNAL_BYTES - 1024) { send(hist(batch)); batch = []; size = 0; }
      batch.push({ from: it.from, env: it.env });
      size += n;
    }
    if (batch.length) send(hist(batch));
  }

  _lib(e, empty = false) {
    const done = !empty && e.complete;
    const have = empty ? [] : (done ? [[0, e.chunks]] : haveRanges(e.held));
    const b = { kind: Signal.LIB, session: e.id, file: e.id, origin: e.origin, chunks: e.chunks, env: C.b64u(e.env) };
    if (have.length) b.have = have;
    if (done) b.done = true;
    return b;
  }

  /** We started fetching e: every verified online member hears of it (an
   * empty have), so other fetchers of the same file can link to us. */
  fetching(e) {
    if (e._announced || !e.env) return;
    e._announced = true;
    for (const m of this.room.members.values()) {
      if (m.online && m.verified) this.room.p2p.sendSignal(m.id, this._lib(e, true)).catch(() => {});
    }
  }

  /** A `lib` signal from member from. */
  async onLib(from, b) {
    if (!C.validUUID(b.file) || !C.validUUID(b.origin) || typeof b.env !== 'string' || !Number.isSafeInteger(b.chunks) || b.chunks < 1 || b.chunks > P.MAX_CHUNKS) return;
    const sw = this.room.swarm;
    let e = sw.entries.get(b.file);
    if (!e || (e.r?.failed && e.r.vanished)) {
      if (b.origin === this.room.id) return; // ours, and forgotten: nothing to fetch
      let env, man;
      try {
        env = C.unb64u(b.env);
        man = await this.room.keys.openManifest({ sender: b.origin, file: b.file, chunks: b.chunks }, env);
      } catch (x) {
        console.warn(`cloakroom: a library entry from ${short(from)} failed to open:`, x.message);
        return;
      }
      if (!Array.isArray(man.hashes)) { console.warn('cloakroom: a library entry without chunk hashes was ignored'); return; }
      // Fetched over links only: a page forced onto the relay cannot fetch from members.
      if (!ladder(this.room.transport).length) return;
      await this.room.receiver.libEntry(man, b.origin, env);
      e = sw.entries.get(b.file);
      if (!e) return;
    }
    // A member fetching a file of ours that we cancelled for it never heard
    // so (or heard it before it knew the file): it hears it again.
    if (e.origin === this.room.id && (e.withdrawn || e.refused?.has(from))) this.room.sender?.stillCancelled(e.id, from);
    // The author holds what it says (a hint until its link's have).
    const ps = sw._peerState(e, from);
    if (b.done) { ps.complete = true; ps.have.fill(1); }
    for (const r of Array.isArray(b.have) ? b.have : []) {
      if (Array.isArray(r) && r[0] < r[1]) ps.have.fill(1, r[0], Math.min(r[1], e.chunks));
    }
    if (!e.r || e.r.done || e.r.failed) return;
    const holds = b.done || (Array.isArray(b.have) && b.have.length > 0);
    // Two fetchers of one file: the smaller member id offers.
    if (holds || this.room.id < from) this.link(from);
  }

  /** Makes sure there is a link to member: offers one (direct, then TURN). */
  link(member) {
    if (this.room.swarm.link(member) || this._linking.has(member)) return this._linking.get(member);
    const run = (async () => {
      for (const mode of ladder(this.room.transport)) {
        let p = null;
        try {
          p = await this.room.p2p.offer(member, mode);
          await p.waitReady(LINK_TIMEOUT_MS);
          await this.room.swarm.attach(p);
          return p;
        } catch (x) {
          p?.bye();
          if (this.room.closed) return null;
          console.info(`cloakroom: no ${mode} link to ${short(member)}:`, x.message);
        }
      }
      return null;
    })();
    this._linking.set(member, run);
    run.finally(() => this._linking.delete(member));
    return run;
  }

  /** A `hist` signal: recent chat, shown as history in stamp order. */
  async onHist(from, b) {
    if (!Array.isArray(b.items)) return;
    const shown = await this._openChats(b.items, { history: true }, () => console.warn(`cloakroom: a history message from ${short(from)} failed to open; dropped`));
    for (const c of shown) this.room.emit('chat', c);
  }

  /** A kept member's chat envelopes (stay.js, before connecting): opened
   * now, counted as seen (the hist signals and relay items that bring them
   * again are dropped) and kept for newcomers; replayRestored() shows them. */
  async restore(feed) {
    this._restored = await this._openChats((Array.isArray(feed) ? feed : []).slice(-P.HISTORY_LENGTH), { restored: true }, () => {});
  }

  /** Emits the restored chat (once), oldest first. */
  replayRestored() {
    const r = this._restored || [];
    this._restored = [];
    for (const c of r) this.room.emit('chat', c);
  }

  /** Opens chat envelopes ({from, env}) not seen before, in stamp order, as
   * chat events marked with mark; each is kept for newcomers. */
  async _openChats(items, mark, onBad) {
    const shown = [];
    for (const it of items.slice(0, P.HISTORY_LENGTH)) {
      if (!it || !C.validUUID(it.from) || typeof it.env !== 'string') continue;
      let opened, body;
      try {
        opened = await this.room.keys.openEnvelope({ sender: it.from }, C.unb64u(it.env));
        body = JSON.parse(C.fromUTF8(opened.plaintext));
      } catch {
        onBad();
        continue;
      }
      const stamp = body && { sess: body.sess, seq: body.seq, ts: body.ts };
      if (body?.kind !== 'chat' || typeof body.text !== 'string' || !validStamp(stamp)) continue;
      const id = C.toHex(opened.id);
      if (this.room._seen.has(id)) continue;
      this.room._seen.add(id);
      this.keepChat(it.from, it.env, stamp.ts);
      shown.push({ id, from: it.from, text: body.text, mine: it.from === this.room.id, time: stamp.ts, sent: stamp.ts, sess: stamp.sess, seq: stamp.seq, ...mark });
    }
    return shown.sort((a, b) => a.sent - b.sent || a.seq - b.seq);
  }
}

const hist = (items) => ({ kind: Signal.HIST, session: C.toHex(C.randomBytes(16)), items });
