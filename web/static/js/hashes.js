// The chunk-hash commitment of protocol v4 (docs/PROTOCOL.md "Chunk-hash
// commitment"; Go: client/transfer/hashes.go): SHA-256 of every chunk's
// unpadded plaintext, grouped in pieces of HASHES_PER_PIECE, each piece's
// SHA-256 in the manifest's `hashes`. A chunk from anyone but the origin is
// checked against its hash before it is written.
import * as C from './crypto.js';
import { HASHES_PER_PIECE } from './protocol.js';

const subtle = globalThis.crypto.subtle;
const sha = async (b) => new Uint8Array(await subtle.digest('SHA-256', b));

export const pieceCount = (chunks) => Math.ceil(chunks / HASHES_PER_PIECE);
/** The chunks [lo, hi) whose hashes piece p holds. */
export function pieceChunks(p, chunks) {
  const lo = Math.min(p * HASHES_PER_PIECE, chunks);
  return [lo, Math.min(lo + HASHES_PER_PIECE, chunks)];
}

/** Reads blob (anything with size and slice(a, b).arrayBuffer()) once, in
 * blocks of 64 chunks, never whole: {sha256 (hex), chunkHashes (32 bytes per
 * chunk), commit (the manifest's hashes)}. progress(bytes) after each block. */
export async function hashFile(blob, chunkSize, progress) {
  const size = blob.size;
  const chunks = C.chunkCount(size, chunkSize);
  const whole = new C.Sha256();
  const chunkHashes = new Uint8Array(32 * chunks);
  const BLOCK = 64;
  for (let first = 0; first < chunks; first += BLOCK) {
    const last = Math.min(chunks, first + BLOCK);
    const start = first * chunkSize;
    const block = new Uint8Array(await blob.slice(start, Math.min(size, last * chunkSize)).arrayBuffer());
    whole.update(block);
    const sums = await Promise.all(Array.from({ length: last - first }, (_, k) =>
      sha(block.subarray(k * chunkSize, Math.min(block.length, (k + 1) * chunkSize)))));
    sums.forEach((s, k) => chunkHashes.set(s, 32 * (first + k)));
    progress?.(Math.min(size, last * chunkSize));
  }
  return { sha256: C.toHex(whole.digest()), chunkHashes, commit: await commitPieces(chunkHashes, chunks) };
}

/** The manifest's commitment to chunkHashes. */
export async function commitPieces(chunkHashes, chunks) {
  const out = [];
  for (let p = 0; p < pieceCount(chunks); p++) {
    const [lo, hi] = pieceChunks(p, chunks);
    out.push(C.b64u(await sha(chunkHashes.subarray(32 * lo, 32 * hi))));
  }
  return out;
}

/** A file's chunk hashes, piece by piece, each checked against the
 * manifest's commitment before it is trusted. */
export class HashList {
  constructor(man) {
    this.chunks = man.chunks;
    this.commit = (man.hashes || []).map((h) => C.unb64u(h));
    this.hashes = new Uint8Array(32 * man.chunks);
    this.known = new Uint8Array(this.commit.length);
  }
  get pieces() { return this.commit.length; }
  get complete() { return this.known.every((x) => x); }
  missing() { return [...this.known.keys()].filter((p) => !this.known[p]); }

  /** Stores piece p if it matches the commitment; returns whether it did. */
  async setPiece(p, piece) {
    if (p >= this.commit.length) return false;
    const [lo, hi] = pieceChunks(p, this.chunks);
    if (piece.length !== 32 * (hi - lo)) return false;
    const sum = await sha(piece);
    if (C.toHex(sum) !== C.toHex(this.commit[p])) return false;
    this.hashes.set(piece, 32 * lo);
    this.known[p] = 1;
    return true;
  }

  /** Stores every piece of chunkHashes (the origin's own). */
  async fill(chunkHashes) {
    for (let p = 0; p < this.pieces; p++) {
      const [lo, hi] = pieceChunks(p, this.chunks);
      if (!(await this.setPiece(p, chunkHashes.subarray(32 * lo, 32 * hi)))) throw new Error(`hash piece ${p} does not match the manifest`);
    }
  }

  piece(p) {
    if (!this.known[p]) return null;
    const [lo, hi] = pieceChunks(p, this.chunks);
    return this.hashes.slice(32 * lo, 32 * hi);
  }

  knows(i) { return i < this.chunks && !!this.known[Math.floor(i / HASHES_PER_PIECE)]; }

  /** Whether chunk i's plaintext (unpadded) matches its hash: true, false,
   * or null when its piece is not known yet. */
  async check(i, plain) {
    if (!this.knows(i)) return null;
    return C.toHex(await sha(plain)) === C.toHex(this.hashes.subarray(32 * i, 32 * i + 32));
  }
}
