// The receiver's judgement of stamped chat and manifest messages: the same
// rules as Go's internal/protocol/order.go, checked against the shared
// vectors in internal/protocol/testdata/order_vectors.json
// (node scripts/order-vectors.mjs). docs/SECURITY.md, "Replay and order".

/** Clock difference between members tolerated against the join time. */
export const ORDER_SKEW_MS = 120000;
const WINDOW = 1024; // gaps remembered per session
const SESSIONS = 16; // sessions remembered per sender

export const Verdict = Object.freeze({
  IN_ORDER: 'in-order', // next message of its session
  AFTER_GAP: 'after-gap', // newer than expected: `missing` messages not seen before it
  LATE: 'late', // fills an earlier gap: show in its place, marked late
  DUPLICATE: 'duplicate', // seen before: drop
  REPLAYED: 'replayed', // sealed before this receiver joined: drop and report
});

/** Checks a stamp's form: {sess: 32 hex, seq: 1.., ts: unix ms}. */
export function validStamp(s) {
  return !!s && typeof s.sess === 'string' && /^[0-9a-f]{32}$/.test(s.sess) &&
    Number.isSafeInteger(s.seq) && s.seq >= 1 && Number.isSafeInteger(s.ts) && s.ts >= 1;
}

export class Order {
  /** @param {number} joined the receiver's join time, unix ms */
  constructor(joined) {
    this.joined = joined;
    this.senders = new Map(); // sender -> Map(session -> state), insertion order = age
  }

  /** The sender's session had sent through seq when it answered our
   *  presence challenge; never moves a session backwards. */
  baseline(sender, sess, seq) {
    const ss = this._lookup(sender, sess) ?? this._session(sender, sess, seq + 1);
    ss.next = Math.max(ss.next, seq + 1);
  }

  /** Returns {verdict, missing?} for a validated stamp and records it. */
  judge(sender, st) {
    const beforeJoin = st.ts < this.joined - ORDER_SKEW_MS;
    const ss = this._lookup(sender, st.sess);
    if (!ss) {
      if (beforeJoin) return { verdict: Verdict.REPLAYED };
      this._session(sender, st.sess, st.seq).next = st.seq + 1;
      return { verdict: Verdict.IN_ORDER };
    }
    if (st.seq === ss.next) {
      ss.next++;
      return { verdict: Verdict.IN_ORDER };
    }
    if (st.seq > ss.next) {
      const missing = st.seq - ss.next;
      for (let s = Math.max(ss.next, st.seq - Math.min(missing, WINDOW)); s < st.seq; s++) ss.missing.add(s);
      ss.next = st.seq + 1;
      if (ss.missing.size > WINDOW) for (const s of ss.missing) if (s + WINDOW < ss.next) ss.missing.delete(s);
      return { verdict: Verdict.AFTER_GAP, missing };
    }
    if (ss.missing.delete(st.seq)) return { verdict: Verdict.LATE };
    if (st.seq >= ss.first || ss.early.has(st.seq) || ss.first - st.seq > WINDOW) return { verdict: Verdict.DUPLICATE };
    if (beforeJoin) return { verdict: Verdict.REPLAYED };
    ss.early.add(st.seq);
    return { verdict: Verdict.LATE };
  }

  _lookup(sender, sess) {
    return this.senders.get(sender)?.get(sess);
  }

  _session(sender, sess, first) {
    let m = this.senders.get(sender);
    if (!m) this.senders.set(sender, (m = new Map()));
    const ss = { first, next: first, missing: new Set(), early: new Set() };
    m.set(sess, ss);
    if (m.size > SESSIONS) m.delete(m.keys().next().value);
    return ss;
  }
}
