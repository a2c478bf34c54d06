// Checks web/static/js/store.js in the page: every kind of sink (OPFS through
// the worker, OPFS through a writable stream, chunk Blobs) writes chunks given in
// order and out of order, and finish() returns the SHA-256 WebCrypto computes.
import { openStore, FileStore, hashBlob, LOCK_PREFIX } from '/js/store.js';
import { toHex, newUUID } from '/js/crypto.js';

export async function run() {
  const failures = [];
  let checks = 0;
  const ok = (what, cond, detail = '') => { checks++; if (!cond) failures.push(`${what}${detail ? ': ' + detail : ''}`); };
  // Left in OPFS by earlier pages: one file no page holds (a closed page's),
  // one whose lock is held (as by another open tab). Opening the store
  // sweeps the first and keeps the second.
  const root = await (await navigator.storage.getDirectory()).getDirectoryHandle('received', { create: true });
  const exists = (n) => root.getFileHandle(n).then(() => true, () => false);
  const stale = newUUID(), heldElsewhere = newUUID();
  for (const n of [stale, heldElsewhere]) {
    const w = await (await root.getFileHandle(n, { create: true })).createWritable();
    await w.write(new Uint8Array(1000));
    await w.close();
  }
  await new Promise((r) => navigator.locks.request(LOCK_PREFIX + heldElsewhere, () => { r(); return new Promise(() => {}); }));
  const worker = await openStore();
  ok('a file no page holds is removed when a page opens the store', !(await exists(stale)));
  ok('a file another page holds is kept', await exists(heldElsewhere));
  const stream = await openStore({ worker: false });
  const memory = new FileStore(null, null);
  const CS = 64512;
  for (const [name, store, kind] of [['worker', worker, 'opfs-worker'], ['stream', stream, 'opfs-stream'], ['memory', memory, 'blob']]) {
    for (const [size, order] of [[0, 'in'], [1, 'in'], [CS, 'in'], [5 * CS + 123, 'in'], [5 * CS + 123, 'reverse'], [9 * CS, 'shuffled']]) {
      const data = new Uint8Array(size);
      for (let i = 0; i < size; i += 65536) crypto.getRandomValues(data.subarray(i, Math.min(size, i + 65536)));
      const want = toHex(new Uint8Array(await crypto.subtle.digest('SHA-256', data)));
      const id = newUUID();
      const sink = await store.create(id, size);
      ok(`${name}: sink kind`, sink.kind === kind, sink.kind);
      if (name !== 'memory') {
        const q = await navigator.locks.query();
        ok(`${name}: the page holds its file's lock`, q.held.some((l) => l.name === LOCK_PREFIX + id));
      }
      const n = Math.max(1, Math.ceil(size / CS));
      let idx = [...Array(n).keys()];
      if (order === 'reverse') idx.reverse();
      if (order === 'shuffled') idx = idx.map((i) => [(i * 7919) % 13, i]).sort((a, b) => a[0] - b[0]).map((x) => x[1]);
      await Promise.all(idx.map((i) => sink.write(i * CS, data.slice(i * CS, Math.min(size, (i + 1) * CS)))));
      if (sink.read && size > 0) { // a chunk read back before the end (served to the swarm, streamed)
        const i = n - 1, len = Math.min(CS, size - i * CS);
        const c = await sink.read(i * CS, len);
        ok(`${name}: chunk ${i} read back before finish`, c.length === len && c.every((x, k) => x === data[i * CS + k]));
      }
      const got = await sink.finish();
      ok(`${name}: sha256 of ${size} bytes written ${order}`, got === want, `${got} want ${want}`);
      const f = await sink.file();
      ok(`${name}: file of ${size} bytes`, f.size === size && (await hashBlob(f)) === want, `size ${f.size}`);
    }
    // An aborted file is gone from OPFS.
    if (name !== 'memory') {
      const id = newUUID();
      const sink = await store.create(id, 10);
      await sink.write(0, new Uint8Array(5));
      await sink.abort();
      const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('received');
      let gone = false;
      try { await dir.getFileHandle(id); } catch { gone = true; }
      ok(`${name}: aborted file removed`, gone);
    }
  }
  // A second store (as in another tab) keeps the files this page holds.
  const before = [];
  for await (const n of root.keys()) before.push(n);
  await openStore();
  const after = [];
  for await (const n of root.keys()) after.push(n);
  ok('opening a store keeps every file an open page holds', after.length === before.length && before.length > 10, `${before.length} -> ${after.length}`);
  const big = await memory.create(newUUID(), 300 * 1024 * 1024).then(() => 'created', (e) => e.message);
  ok('memory fallback refuses files over its limit with a clear message', /limit/.test(big), big);
  return { checks, failures };
}
