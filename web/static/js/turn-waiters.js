// The answers to a room's `turn` requests (room.js requestTURN). The server
// answers every request, in order with the messages before it on the
// connection: an answer means everything written before the request was
// handled (a chat stored in the relay). ws.turnSent and ws.turnGot count
// requests and answers per connection.
export class TurnWaiters {
  constructor() { this.w = []; } // {ws, n, resolve}

  /** The answer to the request just sent on ws: true once it came, false
   * if the connection ended first. */
  wait(ws) {
    const n = ws.turnSent = (ws.turnSent || 0) + 1;
    return new Promise((resolve) => this.w.push({ ws, n, resolve }));
  }

  /** Counts a turn answer on ws as it arrives (before the pump handles it). */
  answered(ws, text) {
    let m;
    try { m = JSON.parse(text); } catch { return; }
    if (m?.t !== 'turn') return;
    ws.turnGot = (ws.turnGot || 0) + 1;
    this._settle((w) => w.ws === ws && w.n <= ws.turnGot, true);
  }

  /** ws ended: its requests are not answered. */
  end(ws) { this._settle((w) => w.ws === ws, false); }

  _settle(match, ok) {
    this.w = this.w.filter((w) => {
      if (!match(w)) return true;
      w.resolve(ok);
      return false;
    });
  }
}
