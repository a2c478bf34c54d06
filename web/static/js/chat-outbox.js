// Chat on its way to the server: sealed envelopes queued in order, written on
// the live connection, then confirmed (a turn request: the server answers it
// after the messages before it were stored). Chat not confirmed when the
// connection breaks is written again on the next one (the same envelope:
// receivers drop a second copy by its id).

const REJOIN_MS = 10000; // after a reconnect, queued chat waits at most this long for the members online before the break
const CONFIRM_MS = 5000; // a chat not confirmed by the server this long is confirmed again

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The chat of a room not yet confirmed by the server. session (the Room)
 * provides: socket, live(), closed, members, onlineMembers, nextEvent(ms),
 * requestTURN(), emit(type, detail). */
export class ChatOutbox {
  constructor(session) {
    this.s = session;
    this._queue = [];      // {id, data, ws}: ws the connection it was last written on
    this._flushing = false;
    this._awaitBack = [];  // members online when the connection last broke
    this._backBy = 0;      // until when queued chat waits for them (performance.now())
  }

  /** Chat still waiting for the server's confirmation. */
  get pending() { return this._queue.length; }

  /** Queues a sealed chat: id (hex), data (the envelope, base64url). */
  push(id, data) {
    this._queue.push({ id, data, ws: null });
  }

  /** The connection broke: who to wait for before sending queued chat (also
   * those still awaited from an earlier break). */
  broke() {
    const back = new Set(performance.now() < this._backBy ? this._awaitBack : []);
    for (const id of this.s.onlineMembers) back.add(id);
    this._awaitBack = [...back];
  }

  /** Joined again after a break: queued chat waits a little for them. */
  rejoined() {
    this._backBy = performance.now() + REJOIN_MS;
  }

  /** After a reconnect, waits (at most REJOIN_MS) for the members online
   * before the break to be online again: a restarted server owes a message
   * only to the members it knows. */
  async _waitRejoined() {
    while (!this.s.closed && performance.now() < this._backBy &&
      this._awaitBack.some((id) => !this.s.members.get(id)?.online)) {
      await this.s.nextEvent(Math.max(10, Math.min(250, this._backBy - performance.now())));
    }
  }

  /** Writes the queued chat, in order, on the live connection, then asks the
   * server to confirm it. One runs at a time. */
  async flush() {
    if (this._flushing) return;
    this._flushing = true;
    try {
      while (!this.s.closed) {
        if (!this._queue.some((e) => !e.ws || e.ws !== this.s.socket)) return;
        if (!this.s.live()) { await this.s.nextEvent(1000); continue; }
        await this._waitRejoined();
        const ws = this.s.live();
        if (!ws) continue;
        const batch = this._queue.filter((e) => e.ws !== ws);
        try {
          for (const e of batch) {
            ws.send(JSON.stringify({ t: 'msg', data: e.data }));
            e.ws = ws;
          }
        } catch { // closing: the next connection takes them
          await this.s.nextEvent(250);
          continue;
        }
        this._confirm(ws, batch);
      }
    } finally {
      this._flushing = false;
    }
  }

  async _confirm(ws, batch) {
    for (;;) {
      let ok;
      try {
        ok = await Promise.race([this.s.requestTURN(), sleep(CONFIRM_MS).then(() => null)]);
      } catch {
        ok = false;
      }
      if (ok === null && this.s.socket === ws) continue; // no answer (a dropped request?): ask again
      if (!ok) return; // the connection ended first: flush writes them again on the next one
      for (const e of batch) {
        const i = this._queue.indexOf(e);
        if (i < 0 || e.ws !== ws) continue;
        this._queue.splice(i, 1);
        this.s.emit('chatsent', { id: e.id });
      }
      return;
    }
  }
}
