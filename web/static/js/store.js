// Where received files go while they arrive: the origin-private file system
// (OPFS: disk-backed, no prompt, survives a reload), written chunk by chunk;
// or, where the browser offers no OPFS, a bounded in-memory fallback.

export const MEMORY_LIMIT = 256 * 1024 * 1024;
const DIR = 'received';

/** A file being written. write(position, bytes) in any order, then close(). */
class OPFSSink {
  constructor(handle, writable) { this.kind = 'disk'; this._h = handle; this._w = writable; }
  write(position, data) { return this._w.write({ type: 'write', position, data }); }
  async close() { await this._w.close(); this._w = null; }
  /** The finished file (disk-backed; never read whole into memory). */
  file() { return this._h.getFile(); }
  async abort() { try { await this._w?.abort(); } catch { /* already closed */ } }
}

class MemorySink {
  constructor(size) { this.kind = 'memory'; this._parts = new Map(); this._size = size; }
  async write(position, data) { this._parts.set(position, data.slice()); }
  async close() {}
  async file() {
    const parts = [...this._parts.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]);
    return new File(parts, 'file');
  }
  async abort() { this._parts.clear(); }
}

/** The store of received files. */
export class FileStore {
  constructor(dir) { this._dir = dir; this.persistent = !!dir; }

  /** A sink for a file of size bytes named by its (uuid) file id. */
  async create(id, size) {
    if (this._dir) {
      const h = await this._dir.getFileHandle(id, { create: true });
      return new OPFSSink(h, await h.createWritable({ keepExistingData: false }));
    }
    if (size > MEMORY_LIMIT) {
      throw new Error(`this browser offers no file storage for pages, and ${(size / 1e6).toFixed(0)} MB is over the ${MEMORY_LIMIT / 1e6} MB in-memory limit`);
    }
    return new MemorySink(size);
  }

  async remove(id) {
    if (this._dir) { try { await this._dir.removeEntry(id); } catch { /* gone already */ } }
  }
}

/** Opens OPFS, or the in-memory fallback where OPFS is missing or refused. */
export async function openStore() {
  try {
    const root = await navigator.storage.getDirectory();
    return new FileStore(await root.getDirectoryHandle(DIR, { create: true }));
  } catch {
    return new FileStore(null);
  }
}
