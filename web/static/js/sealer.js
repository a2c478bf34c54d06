// Reading a File in blocks and sealing its chunks, for every path a file
// goes out on: each chunk is sealed at full size, the last one zero-padded
// (docs/PROTOCOL.md).

export const READ_BLOCK = 64; // chunks read from the File (and sealed) at a time

/** Reads the block of chunks from first (READ_BLOCK of them, fewer at the
 * end) and seals the ones in want (ascending indices; all when omitted)
 * concurrently, in want's order. */
export async function sealBlock(file, man, cipher, first, want) {
  const cs = man.chunkSize;
  const last = Math.min(man.chunks, first + READ_BLOCK);
  const idx = want ?? Array.from({ length: last - first }, (_, k) => first + k);
  const block = new Uint8Array(await file.slice(first * cs, Math.min(man.size, last * cs)).arrayBuffer());
  return Promise.all(idx.map((i) => {
    const plain = new Uint8Array(cs);
    plain.set(block.subarray((i - first) * cs, Math.min(block.length, (i - first + 1) * cs)));
    return cipher.seal(i, plain);
  }));
}

/** Reads the file in blocks, seals each block's chunks concurrently (the
 * next block while this one is sent) and calls send(index, sealed) in
 * order. */
export async function forEachSealed(file, man, cipher, send) {
  let next = sealBlock(file, man, cipher, 0);
  for (let first = 0; first < man.chunks; first += READ_BLOCK) {
    const sealed = await next;
    next = first + READ_BLOCK < man.chunks ? sealBlock(file, man, cipher, first + READ_BLOCK) : null;
    next?.catch(() => {});
    for (let k = 0; k < sealed.length; k++) await send(first + k, sealed[k]);
  }
}
