// Wire protocol version 4 (docs/PROTOCOL.md, internal/protocol): limits, the
// binary chunk frames, the data-channel messages, and the transport
// vocabulary (transports, modes, paths, connection states, signal kinds).
// Control messages are plain JSON objects.

export const PROTOCOL_VERSION = 4;
export const CHUNK_SIZE = 64512;
export const MAX_SEALED_CHUNK = CHUNK_SIZE + 16;
export const MAX_CHUNKS = 1 << 24;
export const MAX_FRAME_BYTES = 64 << 10;
export const MAX_ENVELOPE_BYTES = 32 << 10;
export const MAX_SIGNAL_BYTES = 44 << 10;
export const MAX_ACK_IDS = 1024;

export const FRAME_VERSION = 1;
export const FRAME_CHUNK_UP = 1;
export const FRAME_CHUNK_DOWN = 2;
export const CHUNK_UP_HEADER = 27;
export const CHUNK_DOWN_HEADER = 51;

export class FrameError extends Error {
  constructor(msg) { super('invalid frame: ' + msg); this.name = 'FrameError'; }
}

/** A ChunkUp frame: header then the sealed chunk. file = 16 bytes. */
export function chunkUpFrame(file, index, count, sealed) {
  const b = new Uint8Array(CHUNK_UP_HEADER + sealed.length);
  b[0] = FRAME_VERSION; b[1] = FRAME_CHUNK_UP;
  b.set(file, 2);
  const dv = new DataView(b.buffer);
  dv.setUint32(18, index); dv.setUint32(22, count);
  b[26] = index === count - 1 ? 1 : 0;
  b.set(sealed, CHUNK_UP_HEADER);
  return b;
}

function tail(b, off) {
  const dv = new DataView(b.buffer, b.byteOffset + off, 25);
  const c = { file: b.slice(off, off + 16), index: dv.getUint32(16), count: dv.getUint32(20), final: false };
  const flags = dv.getUint8(24);
  if (flags > 1) throw new FrameError(`unknown flags ${flags}`);
  c.final = flags === 1;
  return c;
}

function validate(c) {
  if (c.count === 0 || c.count > MAX_CHUNKS) throw new FrameError(`chunk count ${c.count}`);
  if (c.index >= c.count) throw new FrameError(`chunk index ${c.index} >= count ${c.count}`);
  if (c.final !== (c.index === c.count - 1)) throw new FrameError(`final flag on chunk ${c.index} of ${c.count}`);
  if (c.sealed.length < 16 || c.sealed.length > MAX_SEALED_CHUNK) throw new FrameError(`sealed chunk of ${c.sealed.length} bytes`);
  return c;
}

function check(b, kind, header) {
  if (b.length < 2) throw new FrameError(`frame of ${b.length} bytes`);
  if (b[0] !== FRAME_VERSION) throw new FrameError(`frame version ${b[0]}`);
  if (b[1] !== kind) throw new FrameError(`frame kind ${b[1]}, want ${kind}`);
  if (b.length < header || b.length > MAX_FRAME_BYTES) throw new FrameError(`frame of ${b.length} bytes`);
}

/** Parses a ChunkUp frame (also what peers send on data channels). */
export function parseChunkUp(b) {
  check(b, FRAME_CHUNK_UP, CHUNK_UP_HEADER);
  const c = tail(b, 2);
  c.sealed = b.subarray(CHUNK_UP_HEADER);
  return validate(c);
}

/** Parses a ChunkDown frame: {item (Number), sender (16 bytes), file, index, count, final, sealed}. */
export function parseChunkDown(b) {
  check(b, FRAME_CHUNK_DOWN, CHUNK_DOWN_HEADER);
  const dv = new DataView(b.buffer, b.byteOffset, CHUNK_DOWN_HEADER);
  const item = dv.getBigUint64(2);
  if (item === 0n) throw new FrameError('item id 0');
  if (item > BigInt(Number.MAX_SAFE_INTEGER)) throw new FrameError('item id too large');
  const c = tail(b, 26);
  c.item = Number(item);
  c.sender = b.slice(10, 26);
  c.sealed = b.subarray(CHUNK_DOWN_HEADER);
  return validate(c);
}

// ---- data-channel messages (internal/protocol/datachannel.go) -------------
// Chunks travel on data channels as the same ChunkUp frames the relay takes
// (first byte FRAME_VERSION); the other messages start with one of these
// kinds, which can never be a frame version.

export const DC_CONFIRM = 0xc1;  // [kind][32-byte key-confirmation tag]
export const DC_MANIFEST = 0xc2; // [kind][file 16][chunks u32][sealed manifest envelope]
export const DC_PROGRESS = 0xc3; // [kind][file 16][chunks received u32] receiver -> sender
export const DC_DONE = 0xc4;     // [kind][file 16][status: 0 ok, 1 failed][reason, UTF-8]
export const DC_MAX_MESSAGE = 64 << 10;
// Room library and swarm (protocol v4; docs/PROTOCOL.md "Room library and swarm").
export const DC_HAVE = 0xc6;     // [kind][file 16][flags u8][n u16][n x (lo u32, hi u32)]
export const DC_WANT = 0xc7;     // [kind][file 16][any u16][n u16][n x index u32]
export const DC_HASH_REQ = 0xc8; // [kind][file 16][piece u32]
export const DC_HASHES = 0xc9;   // [kind][file 16][piece u32][32-byte hashes]
export const DC_CANCEL = 0xca;   // [kind][file 16]
export const HAVE_FULL = 1;
export const HAVE_COMPLETE = 2;
export const HASHES_PER_PIECE = 2000;
export const MAX_HAVE_RANGES = 1000;
export const MAX_WANT_INDICES = 1024;
export const MAX_OUTSTANDING_WANTS = 256;
export const HISTORY_LENGTH = 100;
export const LIBRARY_ANNOUNCE = 50;
const MAX_REASON = 1024;

/** The wire form of a data-channel control message:
 * {kind, tag} | {kind, file, chunks, sealed} | {kind, file, chunks} | {kind, file, failed, reason}. */
export function dcMessage(m) {
  switch (m.kind) {
    case DC_CONFIRM: {
      const b = new Uint8Array(1 + m.tag.length);
      b[0] = DC_CONFIRM; b.set(m.tag, 1);
      return b;
    }
    case DC_MANIFEST: case DC_PROGRESS: {
      const extra = m.kind === DC_MANIFEST ? m.sealed.length : 0;
      const b = new Uint8Array(21 + extra);
      b[0] = m.kind; b.set(m.file, 1);
      new DataView(b.buffer).setUint32(17, m.chunks);
      if (extra) b.set(m.sealed, 21);
      return b;
    }
    case DC_DONE: {
      let reason = new TextEncoder().encode(m.reason || '');
      if (reason.length > MAX_REASON) reason = new TextEncoder().encode(new TextDecoder().decode(reason.subarray(0, MAX_REASON - 3)).replace(/\uFFFD$/, ''));
      const b = new Uint8Array(18 + reason.length);
      b[0] = DC_DONE; b.set(m.file, 1); b[17] = m.failed ? 1 : 0; b.set(reason, 18);
      return b;
    }
  }
  return swarmMessage(m);
}

/** The swarm messages (as Go's appendSwarm): {kind: DC_HAVE, file, flags,
 * ranges: [[lo, hi)…]} | {kind: DC_WANT, file, any, indices} |
 * {kind: DC_HASH_REQ, file, piece} | {kind: DC_HASHES, file, piece, hashes} |
 * {kind: DC_CANCEL, file}. */
function swarmMessage(m) {
  let n;
  switch (m.kind) {
    case DC_HAVE: n = 20 + 8 * m.ranges.length; break;
    case DC_WANT: n = 21 + 4 * m.indices.length; break;
    case DC_HASH_REQ: n = 21; break;
    case DC_HASHES: n = 21 + m.hashes.length; break;
    case DC_CANCEL: n = 17; break;
    default: throw new FrameError(`data-channel message kind ${m.kind}`);
  }
  const b = new Uint8Array(n);
  const dv = new DataView(b.buffer);
  b[0] = m.kind; b.set(m.file, 1);
  switch (m.kind) {
    case DC_HAVE:
      b[17] = m.flags; dv.setUint16(18, m.ranges.length);
      m.ranges.forEach(([lo, hi], i) => { dv.setUint32(20 + 8 * i, lo); dv.setUint32(24 + 8 * i, hi); });
      break;
    case DC_WANT:
      dv.setUint16(17, m.any || 0); dv.setUint16(19, m.indices.length);
      m.indices.forEach((x, i) => dv.setUint32(21 + 4 * i, x));
      break;
    case DC_HASH_REQ: case DC_HASHES:
      dv.setUint32(17, m.piece);
      if (m.kind === DC_HASHES) b.set(m.hashes, 21);
      break;
  }
  return b;
}

/** Parses a swarm message body (after the kind byte), as Go's parseSwarm. */
function parseSwarm(kind, body) {
  if (body.length < 16) throw new FrameError(`data-channel message kind 0x${kind.toString(16)} of ${body.length + 1} bytes`);
  const m = { kind, file: body.slice(0, 16) };
  const rest = body.subarray(16);
  const dv = new DataView(rest.buffer, rest.byteOffset, rest.byteLength);
  switch (kind) {
    case DC_HAVE: {
      if (rest.length < 3) throw new FrameError('short have');
      m.flags = rest[0];
      const n = dv.getUint16(1);
      if ((m.flags & ~(HAVE_FULL | HAVE_COMPLETE)) || n > MAX_HAVE_RANGES || rest.length !== 3 + 8 * n) throw new FrameError('malformed have');
      m.ranges = [];
      for (let i = 0; i < n; i++) {
        const lo = dv.getUint32(3 + 8 * i), hi = dv.getUint32(7 + 8 * i);
        if (lo >= hi || hi > MAX_CHUNKS) throw new FrameError(`have range [${lo},${hi})`);
        m.ranges.push([lo, hi]);
      }
      return m;
    }
    case DC_WANT: {
      if (rest.length < 4) throw new FrameError('short want');
      m.any = dv.getUint16(0);
      const n = dv.getUint16(2);
      if (n > MAX_WANT_INDICES || rest.length !== 4 + 4 * n || m.any > MAX_OUTSTANDING_WANTS) throw new FrameError('malformed want');
      m.indices = [];
      for (let i = 0; i < n; i++) {
        const x = dv.getUint32(4 + 4 * i);
        if (x >= MAX_CHUNKS) throw new FrameError(`want index ${x}`);
        m.indices.push(x);
      }
      return m;
    }
    case DC_HASH_REQ: case DC_HASHES: {
      if (rest.length < 4) throw new FrameError('short hash message');
      m.piece = dv.getUint32(0);
      if (m.piece >= Math.floor(MAX_CHUNKS / HASHES_PER_PIECE) + 1) throw new FrameError(`hash piece ${m.piece}`);
      const h = rest.subarray(4);
      if (kind === DC_HASH_REQ && h.length !== 0) throw new FrameError('malformed hash request');
      if (kind === DC_HASHES) {
        if (h.length === 0 || h.length % 32 || h.length > 32 * HASHES_PER_PIECE) throw new FrameError(`hash piece of ${h.length} bytes`);
        m.hashes = h.slice();
      }
      return m;
    }
    case DC_CANCEL:
      if (rest.length !== 0) throw new FrameError('malformed cancel');
      return m;
  }
  throw new FrameError(`data-channel message kind 0x${kind.toString(16)}`);
}

/** Parses a data-channel control message from untrusted bytes (as Go's ParseDC). */
export function parseDC(b) {
  if (b.length === 0 || b.length > DC_MAX_MESSAGE) throw new FrameError(`data-channel message of ${b.length} bytes`);
  const kind = b[0];
  const body = b.subarray(1);
  switch (kind) {
    case DC_CONFIRM:
      if (body.length !== 32) throw new FrameError(`confirm tag of ${body.length} bytes`);
      return { kind, tag: body.slice() };
    case DC_MANIFEST: case DC_PROGRESS: {
      if (body.length < 20) throw new FrameError('short data-channel message');
      const chunks = new DataView(body.buffer, body.byteOffset + 16, 4).getUint32(0);
      if (chunks > MAX_CHUNKS || (kind === DC_MANIFEST && chunks === 0)) throw new FrameError(`chunk count ${chunks}`);
      const m = { kind, file: body.slice(0, 16), chunks };
      if (kind === DC_PROGRESS) {
        if (body.length !== 20) throw new FrameError(`progress of ${body.length} bytes`);
        return m;
      }
      m.sealed = body.slice(20);
      if (m.sealed.length === 0 || m.sealed.length > MAX_ENVELOPE_BYTES) throw new FrameError(`manifest of ${m.sealed.length} bytes`);
      return m;
    }
    case DC_DONE: {
      if (body.length < 17 || body[16] > 1 || body.length > 17 + MAX_REASON) throw new FrameError('malformed done');
      let reason;
      try { reason = new TextDecoder('utf-8', { fatal: true }).decode(body.subarray(17)); } catch { throw new FrameError('malformed done'); }
      return { kind, file: body.slice(0, 16), failed: body[16] === 1, reason };
    }
  }
  return parseSwarm(kind, body);
}

// ---- transport vocabulary (internal/protocol/transport.go, signal.go) -----
// The same strings as the Go client's: they travel on the wire (a signal's
// kind and an offer's mode) or are shown to users (paths, states).

/** The path a user asks for (`?transport=`): the fallback ladder, or one forced rung. */
export const Transport = Object.freeze({
  AUTO: 'auto',   // direct, then TURN, then the relay, per recipient
  P2P: 'p2p',     // direct data channel only
  TURN: 'turn',   // data channel relayed by TURN only
  RELAY: 'relay', // the server's store-and-forward relay only
});

/** Every transport, in the order users see them. */
export const TRANSPORTS = Object.freeze([Transport.AUTO, Transport.P2P, Transport.TURN, Transport.RELAY]);

/** A rung of a peer-to-peer session: which ICE candidates it uses. An offer
 * names its mode, and the answerer uses the same. */
export const Mode = Object.freeze({
  DIRECT: 'direct', // host and server-reflexive candidates (the TURN server as STUN)
  TURN: 'turn',     // relay candidates only, through the room's TURN server
});

/** The path a transfer took to one recipient, as shown to users. */
export const Path = Object.freeze({
  DIRECT: 'direct',
  TURN: 'TURN', // relayed by TURN, on the far side (its protocol not known here)
  TURN_UDP: 'TURN-UDP',
  TURN_TCP: 'TURN-TCP',
  TURN_TLS: 'TURN-TLS',
  RELAY: 'relay',
});

/** A client's connection to the server, as shown to users. */
export const ConnState = Object.freeze({
  CONNECTED: 'connected',       // joined
  RECONNECTING: 'reconnecting', // the connection dropped; trying again with backoff
  RESTORED: 'restored',         // joined again after a drop (or a server restart)
});

/** What an end-to-end signal carries. A client ignores kinds it does not know. */
export const Signal = Object.freeze({
  OFFER: 'offer',         // SDP offer of a new session, with its mode
  ANSWER: 'answer',       // SDP answer
  CANDIDATE: 'candidate', // one trickled ICE candidate
  DECLINE: 'decline',     // the answerer will not connect (reason)
  BYE: 'bye',             // the session is over
  HAVE: 'have',           // receiver -> sender: chunks held (resume)
  PING: 'ping',           // presence challenge: session is a fresh nonce
  PONG: 'pong',           // the answer to a ping, with its session
  LIB: 'lib',             // v4: a library entry the author holds (env, have, done)
  HIST: 'hist',           // v4: recent chat envelopes for a newcomer (items)
  NAME: 'name',           // the sender's display name (name), for the members list and feed
  XFER: 'xfer',           // transfer control about one file (op; docs/PROTOCOL.md "Transfer control")
});

/** What an xfer signal says (docs/PROTOCOL.md "Transfer control"). From the
 * file's origin to a recipient: cancel, offer (offered again after a
 * cancel). From a recipient to the origin: cancel, decline, ask (its user is
 * asked to accept), accept (accepted, or a retry: the origin may offer
 * again). */
export const XferOp = Object.freeze({ CANCEL: 'cancel', DECLINE: 'decline', ASK: 'ask', ACCEPT: 'accept', OFFER: 'offer' });
/** A receiver's DC_DONE failure reasons that mean a choice, not an error
 * (an older sender shows them as they are). */
export const REASON_CANCELLED = 'cancelled by the receiver';
export const REASON_DECLINED = 'declined by the receiver';

/** The peer-to-peer rungs a transport tries, best first, before (for auto)
 * the relay (as Go's Transport.Ladder). The relay transport has none. */
export function ladder(transport) {
  switch (transport) {
    case Transport.P2P: return [Mode.DIRECT];
    case Transport.TURN: return [Mode.TURN];
    case Transport.RELAY: return [];
  }
  return [Mode.DIRECT, Mode.TURN];
}

/** The path a session in mode takes until the selected candidate pair says more. */
export const modePath = (mode) => (mode === Mode.TURN ? Path.TURN : Path.DIRECT);
