// Sending a file through the server's relay store, in rounds
// (docs/PROTOCOL.md "Resume"): each round announces the manifest to the
// recipients, uploads the chunks not every recipient already holds (at most
// SEND_WINDOW ahead of the slowest), and follows the server's events (file_ok,
// progress, delivered, undeliverable), presence and have signals about them.
import * as C from './crypto.js';
import * as P from './protocol.js';
import { Path } from './protocol.js';
import { ERROR_TEXT, LOST } from './server-errors.js';
import { READ_BLOCK, sealBlock } from './sealer.js';

const SEND_HIGH_WATER = 8 << 20; // pause uploading while the socket buffers this much
const SEND_WINDOW = 16 << 20;    // a relay upload runs at most this far ahead of the slowest online recipient's acks
const RACING_WINDOW = 3 << 20;   // …and this far while a relay-first recipient's rungs still try (sender.js RelayLeg)
const MAX_ROUNDS = 100;          // relay rounds of one send (a new one after each lost connection)
const OFFLINE_GRACE_MS = 20000;  // a relay recipient gone offline mid-transfer, before it counts as lost
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The relay uploads of a room. session (the Room) provides: id, keys,
 * members, closed, connGen (connections welcomed so far), socket (the
 * current WebSocket), live(), nextEvent(ms), send(obj). out (the Sender)
 * provides progress(t), flowing(t) and lose(t, members, msg). */
export class RelaySend {
  constructor(session, out) {
    this.s = session;
    this.out = out;
    this._rounds = new Map(); // relay file id (one per round) -> round state (_newRound)
  }

  /** A server event about a relay file (file_ok, progress, delivered,
   * undeliverable, or an error naming the file). */
  event(m) {
    this._rounds.get(m.file)?.event(m);
  }

  /** The connection broke: every round in progress ends (and its send
   * starts a new round once the connection is back). */
  connectionLost(msg) {
    for (const s of this._rounds.values()) s.fail(msg, true);
  }

  /** A recipient was cancelled or declined: rounds may be over. */
  recheck() {
    for (const s of this._rounds.values()) s.check();
  }

  /** A member's presence changed: the rounds sending to it take note. */
  presence(member, event) {
    for (const s of this._rounds.values()) s.presence(member, event);
  }

  /** Sends the file through the server's relay store to recipients, in
   * rounds (docs/PROTOCOL.md "Resume"): when the connection to the server
   * breaks (a server restart loses the relay store) it waits for a new
   * connection and for the recipients to come back, then announces the same
   * content again under a new file id and key (a chunk key and nonce are
   * never used twice) and skips the chunks every recipient says it holds. */
  async send(job, recipients, leg = null) {
    const { t } = job;
    let round = { man: job.man, key: job.key, sealed: job.sealed };
    let pending = recipients;
    t.relayBusy = (t.relayBusy || 0) + 1;
    try {
      for (let n = 1; ; n++) {
        t.rounds = n;
        const gen = this.s.connGen;
        let left;
        try {
          await this._relayRound(job, round, pending, n, n === 1 ? leg : null);
          return;
        } catch (e) {
          if (!e.connLost || this.s.closed || n >= MAX_ROUNDS) throw e;
          left = e.left;
        }
        if (!left.length) return;
        t.note = 'the connection to the server was lost; the file goes on once it is back';
        this.out.progress(t);
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
  async _relayRound(job, round, recipients, n, leg = null) {
    const { t, file } = job;
    const { man, key, sealed } = round;
    const s = this._newRound(t, man.file, recipients);
    s.leg = leg;
    if (leg) leg.round = s;
    this.out.track?.(t, man.file);
    try {
      try {
        this.s.send({ t: 'file', file: man.file, chunks: man.chunks, data: C.b64u(sealed), recipients });
      } catch {
        s.fail(LOST, true);
      }
      const got = await s.fileOK;
      const missed = recipients.filter((r) => !got.includes(r));
      if (missed.length) this.out.lose(t, missed, 'offline when the relay upload started');
      if (got.length === 0) throw new Error('nobody else is online');
      s.narrow(got);
      this.out.flowing(t);
      for (const m of got) {
        const r = t.recipients.get(m);
        if (!r || !['connecting', 'relay', 'sending', 'asking'].includes(r.state)) continue; // cancelled meanwhile
        if (leg?.taken.has(m)) continue; // a session took it over already
        Object.assign(r, { state: 'sending', path: Path.RELAY, acked: 0 });
        if (n === 1) r.bytes = 0;
        s.members.add(m);
      }
      s.applyEarly();
      if (leg && !s.members.size) s.takenOver(''); // sessions took every recipient over before the upload began
      this.out.progress(t);
      await this._upload(t, s, file, man, key);
      t.state = 'delivering';
      this.out.progress(t);
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
      this._rounds.delete(man.file);
    }
  }

  /** Waits for a connection newer than generation gen. */
  async _waitNewConn(gen) {
    while (!(this.s.connGen > gen && this.s.live())) {
      if (this.s.closed) throw new Error('left the room');
      await this.s.nextEvent(1000);
    }
  }

  /** After a reconnect, waits (at most OFFLINE_GRACE_MS) for members to be
   * online again; those not back are reported lost. */
  async _awaitReturn(t, members) {
    const by = performance.now() + OFFLINE_GRACE_MS;
    const away = () => members.filter((m) => !this.s.members.get(m)?.online);
    while (away().length && performance.now() < by && !this.s.closed) {
      await this.s.nextEvent(Math.max(10, Math.min(250, by - performance.now())));
    }
    const gone = away();
    if (gone.length) this.out.lose(t, gone, 'did not come back after the connection to the server broke');
    return members.filter((m) => !gone.includes(m));
  }

  /** The same content under a new file id and key. */
  async _renew(man) {
    const key = C.randomBytes(32);
    const m = { ...man, file: C.newUUID(), key: C.b64u(key) };
    return { man: m, key, sealed: await this.s.keys.sealManifest(this.s.id, { ...m, ...this.s.nextStamp() }) };
  }

  /** A have signal from a recipient (docs/PROTOCOL.md "Resume"): for a
   * relay send in progress; anything else is ignored. */
  onHave(from, b) {
    if (typeof b.file !== 'string') return;
    this._rounds.get(b.file)?.have(from, b);
  }


  /** The state of one relay round of t (relay file id file): the
   * recipients asked (s.targets, then those the server accepted), the relay
   * recipients (s.members), the server's events and have signals about them. */
  _newRound(t, file, recipients) {
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
    s.check = checkDone;
    // Relay first: a session took member over (sender.js RelayLeg); the
    // round neither waits for it nor keeps its window.
    s.takenOver = (member) => {
      s.members.delete(member);
      if (s.members.size) checkDone(); else doneResolve();
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
        case 'file_ok': okResolve(Array.isArray(m.recipients) ? m.recipients.filter((x) => this.s.members.has(x)) : []); return;
        case 'error': s.fail(ERROR_TEXT[m.code] || m.error || m.code); return;
        case 'progress': if (r) { r.acked = Number(m.acked) || 0; r.bytes = Math.min(t.size, (r.acked + s.skipped) * P.CHUNK_SIZE); } break;
        case 'delivered': if (r && r.state === 'sending') { r.state = 'delivered'; r.acked = t.chunks; r.bytes = t.size; } break;
        case 'undeliverable': if (r && r.state === 'sending') { r.state = 'lost'; r.error = m.error || 'undeliverable'; } break;
      }
      this.out.progress(t);
      checkDone();
    };
    s.presence = (member, event) => {
      const r = rec(member);
      if (!r || r.state !== 'sending') return;
      if (event === 'leave') { r.state = 'left'; r.error = 'left the room'; checkDone(); this.out.progress(t); return; }
      // A recipient gone offline mid-transfer gets a grace period to come
      // back (the relay keeps its chunks), as in the Go client.
      if (event === 'offline' && !s.offline.has(member)) {
        s.offline.set(member, setTimeout(() => {
          s.offline.delete(member);
          if (r.state !== 'sending') return;
          r.state = 'left';
          r.error = 'went offline mid-transfer (the relay keeps its chunks until they expire)';
          checkDone();
          this.out.progress(t);
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
      return r?.state === 'sending' && this.s.members.get(m)?.online && n > (r.acked || 0) + window;
    });
    this._rounds.set(file, s);
    return s;
  }

  /** Uploads the chunks of one round that not every recipient holds, at most
   * SEND_WINDOW ahead of the slowest online recipient (what a server
   * restart can lose). */
  async _upload(t, s, file, man, key) {
    const fid = C.uuidBytes(man.file);
    const cipher = await C.newChunkCipher(key, this.s.keys.roomID, this.s.id, fid, man.chunks, man.size);
    const ws = this.s.socket;
    const cs = man.chunkSize;
    const window = Math.max(1, Math.floor(SEND_WINDOW / cs));
    const check = () => {
      if (!s.failed && (this.s.socket !== ws || ws?.readyState !== WebSocket.OPEN)) s.fail(LOST, true);
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
      // Seal the block's chunks concurrently, then send them in order.
      const sealed = await sealBlock(file, man, cipher, first, want);
      for (let k = 0; k < want.length; k++) {
        const i = want[k];
        if (s.allHave(i)) { s.skipped++; continue; }
        while (s.lagging(n, s.leg?.racing() ? Math.max(1, Math.floor(RACING_WINDOW / cs)) : window)) { check(); await sleep(10); }
        check();
        if (s.leg && !s.leg.commit(i)) return; // every recipient has a session now
        ws.send(P.chunkUpFrame(fid, i, man.chunks, sealed[k]));
        n++;
        t.uploaded = (t.uploaded || 0) + (i === man.chunks - 1 ? man.size - i * cs : cs);
      }
      while (ws.bufferedAmount > SEND_HIGH_WATER && !s.failed && ws.readyState === WebSocket.OPEN) await sleep(4);
      if (performance.now() - lastEmit > 100) { lastEmit = performance.now(); this.out.progress(t); }
    }
    // What the socket still buffers has not left yet.
    while (ws.bufferedAmount > 0 && !s.failed && ws.readyState === WebSocket.OPEN) await sleep(10);
    check();
  }
}
