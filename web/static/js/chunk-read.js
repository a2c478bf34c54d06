// Reading chunks of a file a member serves (swarm.js): from the File or
// Blob it holds, a run of consecutive chunks in one slice, each padded to
// the chunk size (a chunk is sealed at full size).

/** Reads every run of consecutive chunks of a batch (of a whole file) in
 * one slice, kept in its entry for readChunk. */
export async function prefetch(batch) {
  for (let k = 0; k < batch.length;) {
    const { e, i } = batch[k];
    let n = 1;
    while (k + n < batch.length && batch[k + n].e === e && batch[k + n].i === i + n) n++;
    k += n;
    const blob = e.blob?.();
    if (!blob || n < 2) continue;
    const cs = e.chunkSize;
    try {
      e.cache = { lo: i, hi: i + n, bytes: new Uint8Array(await blob.slice(i * cs, Math.min(e.size, (i + n) * cs)).arrayBuffer()) };
    } catch { /* read one by one */ }
  }
}

/** Chunk i of e (padded), from the prefetched run or a slice of blob. */
export async function readChunk(e, i, blob) {
  const cs = e.chunkSize, c = e.cache;
  if (c && i >= c.lo && i < c.hi) return padded(c.bytes.subarray((i - c.lo) * cs, Math.min(c.bytes.length, (i - c.lo + 1) * cs)), cs);
  return padded(new Uint8Array(await blob.slice(i * cs, Math.min(e.size, (i + 1) * cs)).arrayBuffer()), cs);
}

/** plain padded with zeros to size (a chunk is sealed at full size). */
export function padded(plain, size) {
  if (plain.length === size) return plain;
  const b = new Uint8Array(size);
  b.set(plain);
  return b;
}
