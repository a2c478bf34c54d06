// Wire protocol version 1 (docs/PROTOCOL.md, internal/protocol): limits and
// the binary chunk frames. Control messages are plain JSON objects.

export const PROTOCOL_VERSION = 1;
export const CHUNK_SIZE = 64512;
export const MAX_SEALED_CHUNK = CHUNK_SIZE + 16;
export const MAX_CHUNKS = 1 << 24;
export const MAX_FRAME_BYTES = 64 << 10;
export const MAX_ENVELOPE_BYTES = 32 << 10;
export const MAX_SIGNAL_BYTES = 16 << 10;
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
