// Sending files: a File to every member online, per recipient over the best
// path that connects — the ladder of the page's transport (a direct data
// channel, then one relayed by TURN; p2p.js), then the server's relay store
// (relay-send.js) for the recipients nothing connected to — with the same
// sealed manifest and chunks on every path, and per-recipient progress on
// the transfer (t.recipients: member -> {state, path, bytes, error}).
import * as C from './crypto.js';
import * as P from './protocol.js';
import { Path, Transport, ladder } from './protocol.js';
import { STALL_MS } from './p2p.js';
import { Transfer, safeName } from './transfer.js';
import { RelaySend } from './relay-send.js';
import { hashFile } from './hashes.js';
import { fitPoster, previewOf } from './poster.js';

const ICE_TIMEOUT_MS = 10000; // each peer-to-peer rung (as the Go client)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The files a room sends. session (the Room) provides: id, keys,
 * transport, members, onlineMembers, closed, emit(type, detail),
 * addEventListener('members'), p2p (offer), and what RelaySend uses. */
export class Sender {
  constructor(session) {
    this.s = session;
    this.relay = new RelaySend(session, this);
  }

  /** Sends a File to every member online now: per recipient over the best
   * path that connects (transport 'auto': direct data channel, then one
   * relayed by TURN, then the server's relay store; 'p2p', 'turn' and
   * 'relay' force one). Resolves with the transfer once every recipient has
   * it or was reported lost. */
  async sendFile(file) {
    const t = new Transfer({ name: safeName(file.sendName || file.name), type: file.type || 'application/octet-stream', size: file.size, direction: 'send', state: 'hashing', file, path: '' });
    t.id = C.newUUID();
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
      const recipients = await this._waitForMembers(t);
      for (const r of recipients) t.recipients.set(r, { state: 'connecting', path: '', bytes: 0, error: '' });
      t.state = 'sending';
      t.peer = recipients.join(',');
      t.started = performance.now();
      this.progress(t);
      let relayTo = recipients;
      const p2p = [];
      if (this.s.transport !== Transport.RELAY) {
        // Each recipient climbs the ladder on its own; the ones nothing
        // connected to share one relay upload, started once all have settled.
        const outcomes = recipients.map((m) => new Promise((resolve) => p2p.push(this._sendP2P(job, m, resolve).catch((e) => {
          resolve(null); // never leave the send waiting on an outcome
          this.lose(t, [m], e.message);
        }))));
        relayTo = (await Promise.all(outcomes)).filter(Boolean);
      }
      if (relayTo.length) await this.relay.send(job, relayTo).catch((e) => this.lose(t, relayTo, e.message));
      await Promise.all(p2p);
      t.finished = performance.now();
      const lost = [...t.recipients.values()].filter((r) => r.state !== 'delivered');
      if (lost.length) throw new Error(`${lost.length} of ${t.recipients.size} members did not get it: ${lost[0].error || 'lost'}`);
      t.bytes = t.size;
      t.state = 'done';
      this.progress(t);
      return t;
    } catch (e) {
      t.state = 'failed';
      t.error = e.message;
      t.finished = t.finished || performance.now();
      this.s.emit('transfer', { transfer: t });
      throw e;
    }
  }

  /** Recomputes a send's path (the paths its recipients took) and bytes
   * (the slowest recipient's), then tells the UI. */
  progress(t) {
    const live = [...t.recipients.values()].filter((r) => r.state !== 'lost');
    const paths = [...new Set([...t.recipients.values()].map((r) => r.path).filter(Boolean))];
    t.path = paths.join(' + ') || (this.s.transport === Transport.RELAY ? Path.RELAY : 'connecting');
    if (t.state !== 'done') t.bytes = live.length ? Math.min(...live.map((r) => r.bytes)) : 0;
    this.s.emit('transfer', { transfer: t });
  }

  /** The first path is up: the speed shown counts from here, not from
   * before connecting. */
  flowing(t) {
    if (t.flowing) return;
    t.flowing = true;
    t.started = performance.now();
  }

  lose(t, members, msg) {
    for (const m of members) {
      const r = t.recipients.get(m);
      if (r && r.state !== 'delivered' && r.state !== 'lost') { r.state = 'lost'; r.error = msg; }
    }
    this.progress(t);
  }

  /** One recipient's peer-to-peer rungs. outcome(member) once, as soon as
   * it is known: null once connected (or failed for good), the member when
   * the relay store must take over. */
  async _sendP2P(job, member, outcome) {
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
        if (this.s.closed) break;
        continue;
      }
      outcome(null);
      this.flowing(t);
      rec.state = 'sending';
      rec.path = p.path;
      rec.relayProtocol = p.relayProtocol;
      this.progress(t);
      try {
        await this._streamP2P(job, p, rec);
        rec.state = 'delivered';
        rec.bytes = t.size;
        this.progress(t); // the link stays up: the next file, or a fetch either way, may use it
        return;
      } catch (e) {
        if (!e.receiver) p.bye(); // a receiver's refusal leaves the link up
        return this._p2pLost(job, member, rec, p, e);
      }
    }
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
    const why = err.receiver ? err.message : `the ${p.path} connection was lost mid-transfer: ${err.message}`;
    if (!err.receiver && this.s.transport === Transport.AUTO && !this.s.closed) {
      await sleep(1000); // let presence settle: a member that vanished is reported offline by the server
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
    const off = this.s.swarm.onVerdict(man.file, p.member, (m) => {
      p._activity = performance.now(); // the receiver may speak on another link with us
      if (m.kind === P.DC_PROGRESS) {
        rec.bytes = Math.min(m.chunks * man.chunkSize, man.size);
        this.progress(t);
      } else if (m.failed) {
        const e = new Error('the receiver reports: ' + m.reason);
        e.receiver = true;
        verdict.reject(e);
      } else {
        verdict.resolve();
      }
    });
    const watch = setInterval(() => {
      if (performance.now() - p._activity > STALL_MS) p.fail(new Error(`no word from the receiver for ${STALL_MS / 1000} s`));
    }, 1000);
    try {
      await this.s.swarm.attach(p, job.entry);
      await done;
    } finally {
      clearInterval(watch);
      off();
    }
  }

  /** The members online now, once there is at least one (waiting: t says so). */
  async _waitForMembers(t) {
    if (this.s.onlineMembers.length === 0) {
      t.state = 'waiting';
      this.s.emit('transfer', { transfer: t });
      while (this.s.onlineMembers.length === 0) {
        if (this.s.closed) throw new Error('left the room');
        await new Promise((r) => this.s.addEventListener('members', r, { once: true }));
      }
    }
    return this.s.onlineMembers;
  }
}
