// Sending files: a File to every member online, per recipient over the best
// path that connects — the ladder of the page's transport (a direct data
// channel, then one relayed by TURN; p2p.js), then the server's relay store
// (relay-send.js) for the recipients nothing connected to — with the same
// sealed manifest and chunks on every path, and per-recipient progress on
// the transfer (t.recipients: member -> {state, path, bytes, error}).
import * as C from './crypto.js';
import * as P from './protocol.js';
import { Path, Signal, Transport, XferOp, ladder } from './protocol.js';
import { STALL_MS } from './p2p.js';
import { Transfer, safeName } from './transfer.js';
import { RelaySend } from './relay-send.js';
import { hashFile } from './hashes.js';
import { fitPoster, previewOf } from './poster.js';

const ICE_TIMEOUT_MS = 10000; // each peer-to-peer rung (as the Go client)
// Relay first (docs/PROTOCOL.md): with transport auto a recipient with no
// session after this long starts on the relay; a session that connects
// later takes the rest of the file over, mid-file.
export const RELAY_WAIT_MS = 500;
const REMIND_MS = 2000;       // a member asking for a file we cancelled for it hears so again at most this often
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The files a room sends. session (the Room) provides: id, keys,
 * transport, members, onlineMembers, closed, emit(type, detail),
 * addEventListener('members'), p2p (offer), and what RelaySend uses. */
export class Sender {
  constructor(session) {
    this.s = session;
    this.relay = new RelaySend(session, this);
    this.jobs = new Map();   // transfer id -> job {t, file, man, key, sealed, entry}
    this.byFile = new Map(); // file id (the first, or a relay round's) -> transfer id
    this.early = new Map();  // transfer id -> transfer, before it has recipients
  }

  /** Sends a File to every member online now: per recipient over the best
   * path that connects (transport 'auto': direct data channel, then one
   * relayed by TURN, then the server's relay store; 'p2p', 'turn' and
   * 'relay' force one). Resolves with the transfer once every recipient has
   * it, declined it, was cancelled or was reported lost or gone; rejects when
   * nobody got it and one failed (docs/TRANSFERS.md). */
  async sendFile(file) {
    const t = new Transfer({ name: safeName(file.sendName || file.name), type: file.type || 'application/octet-stream', size: file.size, direction: 'send', state: 'hashing', file, path: '' });
    t.id = C.newUUID();
    this.early.set(t.id, t); // cancellable while it is hashed or waits for members
    this.s.emit('transfer', { transfer: t });
    try {
      // A video's poster and duration (at most 3 s; at once for other files),
      // taken while the file is hashed.
      const preview = previewOf(file);
      // One read: the file's SHA-256 and every chunk's (the v4 commitment).
      const { sha256, chunkHashes, commit } = await hashFile(file, P.CHUNK_SIZE);
      t.sha256 = sha256;
      const key = C.randomBytes(32);
      const man = {
        file: t.id, name: t.name, type: t.type, size: file.size, chunkSize: P.CHUNK_SIZE,
        chunks: C.chunkCount(file.size, P.CHUNK_SIZE), sha256: t.sha256, key: C.b64u(key), hashes: commit,
      };
      if (!man.chunks || man.chunks > P.MAX_CHUNKS) throw new Error('the file is too large');
      t.chunks = man.chunks;
      Object.assign(man, await preview);
      const stamped = fitPoster({ ...man, ...this.s.nextStamp() }); // too many piece hashes: no poster
      if (!stamped.poster) delete man.poster;
      t.poster = man.poster;
      t.duration = man.duration;
      const sealed = await this.s.keys.sealManifest(this.s.id, stamped);
      const job = { t, file, man, key, sealed };
      // A library entry at once: members who join later fetch it from here.
      job.entry = await this.s.swarm.addOrigin(job, chunkHashes);
      this.jobs.set(t.id, job);
      this.track(t, man.file);
      if (t.cancelled) { job.entry.withdrawn = true; throw new Error('cancelled'); }
      const recipients = await this._waitForMembers(t);
      for (const r of recipients) t.recipients.set(r, newRec());
      this.early.delete(t.id);
      t.state = 'sending';
      t.peer = recipients.join(',');
      t.started = performance.now();
      this.progress(t);
      await this._run(job, recipients);
      if (t.state === 'failed') throw new Error(t.error);
      return t;
    } catch (e) {
      this.early.delete(t.id);
      if (t.cancelled && this.jobs.has(t.id)) this.jobs.get(t.id).entry.withdrawn = true;
      if (t.state !== 'failed' && t.state !== 'cancelled') {
        t.state = t.cancelled ? 'cancelled' : 'failed';
        t.error = t.cancelled ? '' : e.message;
      }
      t.finished = t.finished || performance.now();
      this.s.emit('transfer', { transfer: t });
      throw e;
    }
  }

  /** Delivers job to members (all of them at first; one on a retry), then
   * settles the transfer once no delivery of it is running. */
  async _run(job, members, renew = false) {
    const { t } = job;
    t.running = (t.running || 0) + 1;
    try {
      let relayTo = members;
      const p2p = [];
      let leg = null;
      if (this.s.transport !== Transport.RELAY) {
        // Each recipient climbs the ladder on its own; the ones nothing
        // connected to share one relay upload, started once all have settled
        // — or, relay first (transport auto, a first delivery), once
        // RELAY_WAIT_MS passed: then a session that connects later takes
        // its recipient over from the relay (RelayLeg).
        const wait = this.s.relayWait ?? RELAY_WAIT_MS;
        leg = !renew && this.s.transport === Transport.AUTO && wait >= 0 ? new RelayLeg(job.man.chunks) : null;
        const settled = new Map(); // member -> its outcome (the member: it needs the relay; null: not)
        const outcomes = members.map((m) => new Promise((resolve) => p2p.push(this._sendP2P(job, m, resolve, leg).catch((e) => {
          resolve(null); // never leave the send waiting on an outcome
          this.lose(t, [m], e.message);
        }))).then((v) => { settled.set(m, v); }));
        const all = Promise.all(outcomes);
        if (leg) await Promise.race([all, sleep(wait)]);
        else await all;
        relayTo = members.filter((m) => (settled.has(m) ? settled.get(m) : true));
        if (leg) relayTo = leg.begin(relayTo.filter((m) => active(t.recipients.get(m))));
      }
      relayTo = relayTo.filter((m) => active(t.recipients.get(m)));
      if (relayTo.length) {
        // A retry goes through the relay under a new file id and key (a
        // chunk key and nonce are never used twice).
        const rj = renew ? { ...job, ...(await this.relay._renew(job.man)) } : job;
        if (renew) this.track(t, rj.man.file);
        // A recipient a session took over gets its verdict there.
        await this.relay.send(rj, relayTo, leg).catch((e) => this.lose(t, relayTo.filter((m) => !leg?.taken.has(m)), e.message));
      }
      await Promise.all(p2p);
    } finally {
      t.running--;
    }
    if (!t.running) this.settle(t);
  }

  /** file (one of t's file ids: the first, or a relay round's) names t in
   * the receivers' xfer signals. */
  track(t, file) {
    this.byFile.set(file, t.id);
    (t.fileIds ||= new Set()).add(file);
  }

  /** Once no recipient is still active, the card's verdict: done when
   * anyone got it (the others' rows say why they did not), failed when
   * nobody did and one failed, cancelled otherwise (all cancelled,
   * declined or gone). */
  settle(t) {
    const rs = [...t.recipients.values()];
    if (t.running || rs.some(active) || !rs.length) return;
    const delivered = rs.filter((r) => r.state === 'delivered').length;
    const failed = rs.filter((r) => r.state === 'lost');
    const left = rs.filter((r) => r.state === 'left');
    t.finished = t.finished || performance.now();
    if (delivered) {
      t.state = 'done';
      t.bytes = t.size;
      t.error = '';
    } else if (failed.length) {
      t.state = 'failed';
      t.error = failed.length === rs.length ? (failed[0].error || 'lost') : `${failed.length} of ${rs.length} members did not get it: ${failed[0].error || 'lost'}`;
    } else if (left.length) {
      t.state = 'failed'; // nobody got it: the ones it was for left before it finished
      t.error = left.length === 1 ? 'the member left before it finished' : 'the members left before it finished';
    } else {
      t.state = 'cancelled';
      t.error = '';
    }
    this.s.emit('transfer', { transfer: t });
  }

  /** Recomputes a send's path (the paths its recipients took) and bytes
   * (the slowest still active recipient's), then tells the UI. */
  progress(t) {
    const rs = [...t.recipients.values()];
    const live = rs.filter(active);
    const paths = [...new Set(rs.map((r) => r.path).filter(Boolean))];
    t.path = paths.join(' + ') || (this.s.transport === Transport.RELAY ? Path.RELAY : 'connecting');
    if (t.state === 'sending' || t.state === 'delivering') t.bytes = live.length ? Math.min(...live.map((r) => r.bytes)) : t.size;
    if (!t.running && ['done', 'failed', 'cancelled'].includes(t.state)) return this.settle(t);
    this.s.emit('transfer', { transfer: t });
  }

  /** The first path is up: the speed shown counts from here, not from
   * before connecting. */
  flowing(t) {
    if (t.flowing) return;
    t.flowing = true;
    t.started = performance.now();
  }

  /** Recipients that did not get it: gone from the room (offline now) is
   * "left before it finished", not a failure of the send; the technical
   * reason goes to the console only. */
  lose(t, members, msg) {
    for (const m of members) {
      const r = t.recipients.get(m);
      if (!r || !active(r)) continue;
      console.info(`cloakroom: ${t.name} did not reach ${m.slice(0, 8)}:`, msg);
      r.state = this.s.members.get(m)?.online ? 'lost' : 'left';
      r.error = humanReason(msg);
      r.abort?.();
    }
    this.progress(t);
  }

  /** A member went offline or left: its failed rows say it left. */
  presence(member, event) {
    if (event !== 'offline' && event !== 'leave') return;
    for (const { t } of this.jobs.values()) {
      const r = t.recipients.get(member);
      if (r?.state === 'lost') { r.state = 'left'; this.progress(t); }
    }
  }

  /** Ends one recipient's delivery: cancelled (by 'you' or the member) or
   * declined. The member's wants for the file are no longer served. */
  _end(t, member, state, by = '') {
    const r = t.recipients.get(member);
    if (!r || !active(r)) return;
    r.state = state;
    r.by = by;
    r.abort?.();
    const job = this.jobs.get(t.id);
    if (job && by === 'you') this.s.swarm.refuse(job.entry, member); // a receiver stops asking by itself
    this.relay.recheck();
    this.progress(t);
  }

  /** The user cancels send tid: for member, or every recipient still
   * active. Each hears it (an xfer cancel signal) and drops its partial file. */
  cancel(tid, member = null) {
    const job = this.jobs.get(tid);
    const t = job?.t ?? this.early.get(tid);
    if (!t) return;
    if (t.state === 'hashing' || t.state === 'waiting') { t.cancelled = true; this.s.emit('members'); return; }
    // Cancelled for everyone: no longer offered to members who join later.
    if (!member) job.entry.withdrawn = true;
    const targets = member ? [member] : [...t.recipients.keys()];
    for (const m of targets) {
      if (!active(t.recipients.get(m))) continue;
      this._end(t, m, 'cancelled', 'you');
      for (const file of t.fileIds) this._xfer(m, file, XferOp.CANCEL);
    }
  }

  /** A member still asks for file (our entry) after we cancelled it for
   * them: it is told again (an xfer cancel per file id of the send), at most
   * every REMIND_MS. */
  stillCancelled(file, member) {
    const job = this.jobs.get(this.byFile.get(file));
    if (!job) return;
    const t = job.t;
    const r = t.recipients.get(member);
    if (r && active(r)) return; // still being sent to it (on another path)
    t.reminded ??= new Map();
    const now = performance.now();
    if (now - (t.reminded.get(member) ?? -Infinity) < REMIND_MS) return;
    t.reminded.set(member, now);
    for (const f of t.fileIds) this._xfer(member, f, XferOp.CANCEL);
  }

  /** The user retries a recipient that did not get t: offered again. */
  retry(tid, member) {
    const job = this.jobs.get(tid);
    const t = job?.t;
    if (!t || active(t.recipients.get(member))) return;
    if (!this.s.members.get(member)?.online) return;
    const was = t.recipients.get(member);
    t.recipients.set(member, newRec());
    this.s.swarm.unrefuse(job.entry, member);
    job.entry.withdrawn = false;
    // A recipient we cancelled hears that the cancel is void (xfer offer).
    if (was?.state === 'cancelled' && was.by === 'you') for (const file of t.fileIds) this._xfer(member, file, XferOp.OFFER);
    t.state = 'sending';
    t.finished = 0;
    this.progress(t);
    this._run(job, [member], true).catch((e) => console.info('cloakroom: retry:', e.message));
  }

  /** An xfer signal about a file we send (false: not ours). */
  onXfer(from, b) {
    const tid = this.byFile.get(b.file);
    if (!tid) return false;
    const t = this.jobs.get(tid).t;
    const r = t.recipients.get(from);
    switch (b.op) {
      case XferOp.ASK:
        if (r && active(r)) { r.state = 'asking'; this.progress(t); }
        break;
      case XferOp.ACCEPT:
        if (r?.state === 'asking') { r.state = 'sending'; this.progress(t); } else if (r && !active(r)) this.retry(tid, from);
        break;
      case XferOp.CANCEL: this._end(t, from, 'cancelled', from); break;
      case XferOp.DECLINE: this._end(t, from, 'declined', from); break;
    }
    return true;
  }

  _xfer(to, file, op) {
    this.s.p2p.sendSignal(to, { kind: Signal.XFER, session: file, file, op })
      .catch((e) => console.info('cloakroom: could not tell a member about a transfer:', e.message));
  }

  /** One recipient's peer-to-peer rungs. outcome(member) once, as soon as
   * it is known: null once connected (or failed for good), the member when
   * the relay store must take over. */
  async _sendP2P(job, member, outcome, leg = null) {
    const { t } = job;
    const rec = t.recipients.get(member);
    const errs = [];
    const rungs = ladder(this.s.transport);
    // A ready link with the member on a rung the transport allows carries the
    // file (docs/PROTOCOL.md "Links stay up"); else the ladder makes one.
    const ready = rungs.length ? this.s.swarm.linkFor(member, rungs) : null;
    for (const mode of ready ? [ready.mode] : rungs) {
      let p = ready;
      try {
        if (!p) {
          p = await this.s.p2p.offer(member, mode);
          await p.waitReady(ICE_TIMEOUT_MS);
        }
      } catch (e) {
        p?.bye();
        errs.push(e.message);
        if (this.s.closed || !active(rec)) break;
        continue;
      }
      // Relay first: a recipient the relay serves is taken over before the
      // outcome is told (else it could still become a relay recipient).
      const relayed = leg?.takeOver(member);
      leg?.settle(member);
      outcome(null);
      if (!active(rec)) return; // cancelled while connecting
      this.flowing(t);
      rec.state = 'sending';
      rec.path = p.path;
      if (relayed) {
        this.s.swarm.relaying(job.entry, member, relayed);
        // The upload goes on for others and brings it every chunk: the
        // session carries only the verdict.
        if (relayed.every(Boolean)) rec.path = Path.RELAY;
        else rec.movedFrom = Path.RELAY;
      }
      rec.relayProtocol = p.relayProtocol;
      this.progress(t);
      try {
        await this._streamP2P(job, p, rec);
        rec.state = 'delivered';
        rec.bytes = t.size;
        this.progress(t); // the link stays up: the next file, or a fetch either way, may use it
        return;
      } catch (e) {
        if (!active(rec)) return; // cancelled, declined: the link stays up
        if (!e.receiver) p.bye(); // a receiver's refusal leaves the link up
        return this._p2pLost(job, member, rec, p, e);
      }
    }
    leg?.settle(member);
    if (!active(rec)) return outcome(null);
    if (leg?.targets.has(member)) return outcome(member); // on the relay already (relay first): it stays there
    if (this.s.transport === Transport.AUTO && !this.s.closed) {
      rec.state = 'relay'; // handed to the relay upload
      return outcome(member);
    }
    outcome(null);
    this.lose(t, [member], `no ${this.s.transport === Transport.TURN ? Path.TURN : 'peer-to-peer'} connection: ${errs.join('; ')}`);
  }

  /** A peer-to-peer session broke mid-transfer (docs/DECISIONS.md): with
   * transport 'auto' and the member still online, the file goes again
   * through the relay under the same id (the receiver keeps the chunks it
   * has and writes only the missing ones); otherwise the recipient is
   * reported lost with the reason. */
  async _p2pLost(job, member, rec, p, err) {
    const { t } = job;
    if (err.receiver && err.reason === P.REASON_CANCELLED) return this._end(t, member, 'cancelled', member);
    if (err.receiver && err.reason === P.REASON_DECLINED) return this._end(t, member, 'declined', member);
    const why = err.receiver ? err.message : `the ${p.path} connection was lost mid-transfer: ${err.message}`;
    if (!err.receiver && this.s.transport === Transport.AUTO && !this.s.closed) {
      await sleep(1000); // let presence settle: a member that vanished is reported offline by the server
      if (!active(rec)) return;
      if (this.s.members.get(member)?.online && !t.relayBusy) {
        rec.path = Path.RELAY;
        rec.state = 'sending';
        rec.note = why + '; resumed through the relay';
        this.progress(t);
        try {
          await this.relay.send(job, [member]);
        } catch (e) {
          this.lose(t, [member], `${why}; the relay did not take over either: ${e.message}`);
        }
        return;
      }
      if (!this.s.members.get(member)?.online) return this.lose(t, [member], why + ' (the member went offline)');
    }
    this.lose(t, [member], why);
  }

  /** Offers the file over a confirmed session (protocol v4): the session
   * becomes a link (swarm.js) that announces the manifest, the hash pieces
   * and a full have, then serves what the receiver pulls; this waits for
   * the receiver's verdict. Stalls (no word from the receiver) fail it. */
  async _streamP2P(job, p, rec) {
    const { t, man } = job;
    let verdict;
    const done = new Promise((resolve, reject) => { verdict = { resolve, reject }; });
    done.catch(() => {});
    p.ended.then((e) => verdict.reject(e));
    rec.abort = () => verdict.reject(new Error('ended'));
    const off = this.s.swarm.onVerdict(man.file, p.member, (m) => {
      p._activity = performance.now(); // the receiver may speak on another link with us
      if (m.kind === P.DC_PROGRESS) {
        if (rec.state === 'asking') rec.state = 'sending';
        rec.bytes = Math.min(m.chunks * man.chunkSize, man.size);
        this.progress(t);
      } else if (m.failed) {
        const e = new Error('the receiver reports: ' + m.reason);
        e.receiver = true;
        e.reason = m.reason;
        verdict.reject(e);
      } else {
        verdict.resolve();
      }
    });
    const watch = setInterval(() => {
      if (rec.state === 'asking') p._activity = performance.now(); // its user decides: no stall
      if (performance.now() - p._activity > STALL_MS) p.fail(new Error(`no word from the receiver for ${STALL_MS / 1000} s`));
    }, 1000);
    try {
      await this.s.swarm.attach(p, job.entry);
      await done;
    } finally {
      clearInterval(watch);
      off();
      rec.abort = null;
    }
  }

  /** The members online now, once there is at least one (waiting: t says so). */
  async _waitForMembers(t) {
    if (this.s.onlineMembers.length === 0) {
      t.state = 'waiting';
      this.s.emit('transfer', { transfer: t });
      while (this.s.onlineMembers.length === 0) {
        if (this.s.closed) throw new Error('left the room');
        if (t.cancelled) throw new Error('cancelled');
        await new Promise((r) => this.s.addEventListener('members', r, { once: true }));
      }
    }
    return this.s.onlineMembers;
  }
}

/** A recipient's row: state connecting (the ladder), asking (its user is
 * asked to accept), sending, relay (handed to the relay upload), then
 * delivered, lost (failed: error), left (went away before it finished),
 * cancelled (by: 'you' or the member) or declined. */
function newRec() { return { state: 'connecting', path: '', bytes: 0, error: '', by: '' }; }
export function active(r) { return !!r && ['connecting', 'asking', 'sending', 'relay'].includes(r.state); }

/** A short reason for a failed row (the full one is in the console). */
function humanReason(msg) {
  const m = String(msg || '');
  if (/not enough (storage|space)/i.test(m)) return 'Not enough space on their device';
  if (/no (peer-to-peer|TURN) connection/i.test(m)) return 'Could not connect';
  if (/no word from the receiver/i.test(m)) return 'Stopped answering';
  if (/connection was lost|lost mid-transfer/i.test(m)) return 'The connection was lost';
  if (/offline|left the room|did not come back/i.test(m)) return 'Left before it finished';
  if (/receiver reports/i.test(m)) return 'Their device could not save it';
  return 'Could not deliver it';
}

/** The relay's part of a relay-first send (docs/PROTOCOL.md, "Relay
 * first"), as in the Go client: the recipients it started with, those a
 * session took over since, and the chunks its upload committed to. A chunk
 * is committed before it is uploaded; a take-over stops the upload once
 * every relay recipient has a session, and the session's "any" picks for
 * the member leave out what the relay brings it. */
export class RelayLeg {
  constructor(chunks) {
    this.chunks = chunks;
    this.p2p = new Set();     // members with a session
    this.targets = new Set(); // members started on the relay
    this.taken = new Set();   // targets a session took over
    this.settled = new Set(); // members whose rungs ended (a session, or none)
    this.stopped = false;
    this.uploaded = new Uint8Array(chunks);
    this.round = null;        // the relay round (relay-send.js), once it runs
  }

  /** members (those without a session yet) become the relay's recipients. */
  begin(members) {
    const out = members.filter((m) => !this.p2p.has(m));
    for (const m of out) this.targets.add(m);
    return out;
  }

  /** member has a session. If the relay serves it: the chunks the relay
   * brings it (those committed so far when it was the last relay
   * recipient — the upload stops —, else all), else null. */
  takeOver(member) {
    this.p2p.add(member);
    if (!this.targets.has(member) || this.taken.has(member)) return null;
    this.taken.add(member);
    this.round?.takenOver(member);
    if ([...this.targets].some((m) => !this.taken.has(m))) return new Uint8Array(this.chunks).fill(1);
    this.stopped = true;
    return this.uploaded.slice();
  }

  /** member's rungs ended. */
  settle(member) { this.settled.add(member); }

  /** A relay recipient's rungs still try: their signals share the
   * WebSocket with the upload, which then keeps a short window
   * (relay-send.js RACING_WINDOW) so they do not wait behind it. */
  racing() { return [...this.targets].some((m) => !this.settled.has(m)); }

  /** Reserves chunk i for the upload; false once a take-over stopped it. */
  commit(i) {
    if (this.stopped) return false;
    this.uploaded[i] = 1;
    return true;
  }
}
