// Where received files go while they arrive: the origin-private file system
// (OPFS: disk-backed, no prompt, survives a reload), written chunk by chunk —
// by a worker with synchronous access handles where the browser has them,
// else through a writable stream — or, where the browser offers no usable
// OPFS (WebKitGTK, private windows; docs/BROWSERS.md), chunk Blobs put
// together into one Blob at the end, up to MEMORY_LIMIT bytes.
//
// A sink: write(position, bytes) -> Promise (resolves once written; calls may
// overlap), finish() -> Promise<sha256 hex of the whole file>, file() ->
// Promise<File> (after finish), abort(); the OPFS worker's and the Blob
// sink also read(position, len) a chunk already written.
import { Sha256, toHex } from './crypto.js';

export const MEMORY_LIMIT = 256 * 1024 * 1024;
const DIR = 'received';
export const LOCK_PREFIX = 'cloakroom-opfs:'; // + file name: held by the page that owns the file

const heldLocks = new Set();

/** Holds the Web Lock of a file for as long as this page lives, so that
 * another tab's sweep leaves the file alone. Resolves once held. */
function holdLock(name) {
  // Once per name: a file started again (a retry) keeps the lock it has.
  if (!globalThis.navigator?.locks || heldLocks.has(name)) return Promise.resolve();
  heldLocks.add(name);
  return new Promise((held) => {
    navigator.locks.request(LOCK_PREFIX + name, () => { held(); return new Promise(() => {}); }).catch(() => held());
  });
}

/** Removes the files no open page holds. A closed or reloaded page cannot
 * use its files again (a reload is a new member, whose transfers start
 * over), so without this every received video would stay in the origin's
 * storage until the user clears site data. */
async function sweep(dir) {
  if (!globalThis.navigator?.locks) return;
  const names = [];
  for await (const name of dir.keys()) names.push(name);
  for (const name of names) {
    await navigator.locks.request(LOCK_PREFIX + name, { ifAvailable: true }, async (lock) => {
      if (lock) await dir.removeEntry(name).catch(() => { /* gone, or open elsewhere */ });
    });
  }
}

/** Hashes the chunks that come in order; the rest is read back at the end. */
class RunningHash {
  constructor() { this.h = new Sha256(); this.at = 0; }
  add(position, data) { if (position === this.at) { this.h.update(data); this.at += data.length; } }
  async sum(size, readBack) {
    if (this.at === size) return toHex(this.h.digest());
    return hashBlob(await readBack());
  }
}

/** SHA-256 of a Blob read in slices (never whole in memory). */
export async function hashBlob(blob) {
  const h = new Sha256();
  for (let off = 0; off < blob.size; off += 4 << 20) {
    h.update(new Uint8Array(await blob.slice(off, Math.min(blob.size, off + (4 << 20))).arrayBuffer()));
  }
  return toHex(h.digest());
}

// ---- OPFS through a worker (FileSystemSyncAccessHandle) -------------------

class WorkerClient {
  constructor() {
    this.w = new Worker(new URL('./opfs-worker.js', import.meta.url), { type: 'module' });
    this.seq = 0;
    this.pending = new Map();
    this.w.onmessage = (ev) => {
      const m = ev.data;
      const p = this.pending.get(m.seq);
      this.pending.delete(m.seq);
      if (!p) return;
      if (m.op === 'error') p.reject(new Error(m.error)); else p.resolve(m);
    };
    this.w.onerror = (ev) => {
      for (const p of this.pending.values()) p.reject(new Error('storage worker failed: ' + (ev.message || 'error')));
      this.pending.clear();
    };
  }
  call(msg, transfer) {
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { resolve, reject });
      this.w.postMessage({ ...msg, seq }, transfer || []);
    });
  }
}

// Writes that come within one turn of the event loop go to the worker as one
// message (one answer): a message each way per chunk cost the page's main
// thread and the worker a wake-up each, which a 2-core machine pays out of
// the browser's data-channel threads (BENCHMARKS.md "Browser → browser speed, issue 15").
const WRITE_BATCH = 32; // chunks at most in one message

class WorkerSink {
  constructor(client, dir, id, size) { this.kind = 'opfs-worker'; this._c = client; this._dir = dir; this._id = id; this._size = size; this._batch = null; }
  write(position, data) {
    // The worker takes the bytes (transferred, not copied): give it its own buffer.
    let b = this._batch;
    const own = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && !b?.data.includes(data.buffer);
    const buf = own ? data.buffer : data.slice().buffer;
    if (!b) {
      b = this._batch = { pos: [], data: [], timer: 0 };
      b.result = new Promise((res, rej) => { b.res = res; b.rej = rej; });
      b.timer = setTimeout(() => this._flush(), 0);
    }
    b.pos.push(position);
    b.data.push(buf);
    const p = b.result;
    if (b.pos.length >= WRITE_BATCH) this._flush();
    return p;
  }
  /** Hands the writes waiting to the worker (before any other call, so the
   * worker sees them in order). */
  _flush() {
    const b = this._batch;
    if (!b) return;
    this._batch = null;
    clearTimeout(b.timer);
    this._c.call({ op: 'writev', id: this._id, pos: b.pos, data: b.data }, b.data).then(b.res, b.rej);
  }
  /** Reads back len bytes at position (written chunks, while the file is open). */
  async read(position, len) { this._flush(); return new Uint8Array((await this._c.call({ op: 'read', id: this._id, pos: position, len })).data); }
  async finish() { this._flush(); return (await this._c.call({ op: 'finish', id: this._id, size: this._size })).sha256; }
  async file() { return (await this._dir.getFileHandle(this._id)).getFile(); }
  async abort() { this._flush(); try { await this._c.call({ op: 'abort', id: this._id, name: this._id }); } catch { /* gone */ } }
}

// ---- OPFS through a writable stream ---------------------------------------

class WritableSink {
  constructor(dir, handle, writable, size) {
    this.kind = 'opfs-stream'; this._dir = dir; this._h = handle; this._w = writable; this._size = size;
    this._hash = new RunningHash(); this._q = Promise.resolve();
  }
  write(position, data) {
    const copy = data.slice();
    this._hash.add(position, copy);
    const p = this._q.then(() => this._w.write({ type: 'write', position, data: copy }));
    this._q = p.catch(() => {});
    return p;
  }
  async finish() {
    await this._q;
    await this._w.close();
    this._w = null;
    return this._hash.sum(this._size, () => this._h.getFile());
  }
  file() { return this._h.getFile(); }
  async abort() {
    try { await this._w?.abort(); } catch { /* closed */ }
    try { await this._dir.removeEntry(this._h.name); } catch { /* gone */ }
  }
}

// ---- chunk Blobs --------------------------------------------------------------

/** Each chunk becomes a Blob as it is written (its bytes leave the
 * JavaScript heap for the browser's blob store at once); finish() puts them
 * together, in order, into one Blob that refers to the parts (no copy).
 * Where the blob store keeps them in memory (WebKit, Firefox) a file costs
 * about its size in memory until the page drops it; Chromium spills large
 * blob stores to disk. Hence MEMORY_LIMIT. */
class BlobSink {
  constructor(size) { this.kind = 'blob'; this._parts = new Map(); this._size = size; this._hash = new RunningHash(); this._file = null; }
  async write(position, data) {
    this._hash.add(position, data); // before anything else runs: data is only ours for this call
    this._parts.set(position, new Blob([data]));
  }
  async read(position, len) {
    const b = this._file ? this._file.slice(position, position + len) : this._parts.get(position);
    if (!b || b.size < len) throw new Error('not written');
    return new Uint8Array(await b.slice(0, len).arrayBuffer());
  }
  async finish() { return this._hash.sum(this._size, () => this.file()); }
  async file() {
    if (!this._file) {
      const parts = [...this._parts.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]);
      this._file = new File(parts, 'file');
      this._parts.clear();
    }
    return this._file;
  }
  async abort() { this._parts.clear(); this._file = null; }
}

/** The store of received files. */
export class FileStore {
  constructor(dir, worker) { this._dir = dir; this._worker = worker; this.persistent = !!dir; }

  /** A sink for a file of size bytes named by its (uuid) file id: the best
   * that works here (OPFS through the worker, through a writable stream,
   * then chunk Blobs). */
  async create(id, size) {
    const sink = await this._create(id, size);
    // Tests read a finished file back through this (webtest/engines-lib.mjs
    // readBack), whatever its storage; unset in normal use.
    if (globalThis.__cloakroomReceived instanceof Map) {
      const file = sink.file.bind(sink);
      sink.file = async () => { const f = await file(); globalThis.__cloakroomReceived.set(id, f); return f; };
    }
    return sink;
  }

  async _create(id, size) {
    if (this._dir) await holdLock(id);
    if (this._dir && this._worker) {
      try {
        await this._worker.call({ op: 'open', id, name: id });
        return new WorkerSink(this._worker, this._dir, id, size);
      } catch (e) {
        console.info('cloakroom: no OPFS access handles in a worker here, using a writable stream:', e.message);
        this._worker = null;
      }
    }
    if (this._dir) {
      try {
        const h = await this._dir.getFileHandle(id, { create: true });
        if (typeof h.createWritable !== 'function') throw new Error('no createWritable');
        return new WritableSink(this._dir, h, await h.createWritable({ keepExistingData: false }), size);
      } catch (e) {
        if (e.name === 'QuotaExceededError') throw e; // a full disk: memory would not do better
        console.info('cloakroom: OPFS cannot be written here, keeping received files as Blobs:', e.message);
        this._dir = null;
        this.persistent = false;
      }
    }
    if (size > MEMORY_LIMIT) {
      throw new Error(`this browser offers no file storage for pages, and ${(size / 1e6).toFixed(0)} MB is over its in-memory limit of ${Math.round(MEMORY_LIMIT / 1e6)} MB`);
    }
    return new BlobSink(size);
  }
}

/** Opens OPFS (with its worker when possible), or the in-memory fallback. */
export async function openStore({ worker = true } = {}) {
  let dir = null;
  try {
    dir = await (await navigator.storage.getDirectory()).getDirectoryHandle(DIR, { create: true });
  } catch {
    return new FileStore(null, null);
  }
  await sweep(dir).catch((e) => console.warn('cloakroom: could not clear old received files:', e.message));
  let w = null;
  // createSyncAccessHandle exists only inside dedicated workers: whether it
  // works is learnt from the worker's first 'open' (else a writable stream).
  if (worker && typeof Worker !== 'undefined') {
    try { w = new WorkerClient(); } catch { w = null; }
  }
  return new FileStore(dir, w);
}
