// Dedicated worker that writes received files into the origin-private file
// system with synchronous access handles (fast, in place, no swap file) and
// hashes them on the way: the running SHA-256 covers the chunks that arrive
// in order; anything else is read back from the file at the end.
//
// Messages in:  {op: 'open', id, name} | {op: 'write', id, pos, data} |
//               {op: 'writev', id, pos: [..], data: [..]} (writes in order) |
//               {op: 'read', id, pos, len} | {op: 'finish', id, size} | {op: 'abort', id}
// Messages out: {op: 'done', id, seq, sha256?, data?} | {op: 'error', id, seq, error}
// Every message in carries seq; the worker answers each one, in order.
import { Sha256, toHex } from './crypto.js';

const files = new Map(); // id -> {handle, sync, hash, hashedTo}
let dirPromise = null;

function dir() {
  dirPromise ??= navigator.storage.getDirectory().then((root) => root.getDirectoryHandle('received', { create: true }));
  return dirPromise;
}

function write(f, pos, data) {
  let off = 0;
  while (off < data.length) {
    const n = f.sync.write(data.subarray(off), { at: pos + off });
    if (n <= 0) throw new Error('write failed (disk full?)');
    off += n;
  }
  if (pos === f.hashedTo) { f.hash.update(data); f.hashedTo += data.length; }
}

async function handle(m) {
  switch (m.op) {
    case 'open': {
      const fh = await (await dir()).getFileHandle(m.name, { create: true });
      const sync = await fh.createSyncAccessHandle();
      sync.truncate(0);
      files.set(m.id, { sync, hash: new Sha256(), hashedTo: 0 });
      return {};
    }
    case 'write': {
      const f = files.get(m.id);
      if (!f) throw new Error('file not open');
      write(f, m.pos, new Uint8Array(m.data));
      return {};
    }
    case 'writev': { // several writes, in order (store.js batches them)
      const f = files.get(m.id);
      if (!f) throw new Error('file not open');
      for (let k = 0; k < m.pos.length; k++) write(f, m.pos[k], new Uint8Array(m.data[k]));
      return {};
    }
    case 'read': { // a slice of a file still being written (served to other members)
      const f = files.get(m.id);
      if (!f) throw new Error('file not open');
      const buf = new Uint8Array(m.len);
      let off = 0;
      while (off < m.len) {
        const n = f.sync.read(buf.subarray(off), { at: m.pos + off });
        if (n <= 0) throw new Error('read failed');
        off += n;
      }
      return { data: buf.buffer, transfer: [buf.buffer] };
    }
    case 'finish': {
      const f = files.get(m.id);
      if (!f) throw new Error('file not open');
      f.sync.flush();
      if (f.sync.getSize() !== m.size) throw new Error(`file is ${f.sync.getSize()} bytes, want ${m.size}`);
      let hash = f.hash;
      if (f.hashedTo !== m.size) { // chunks came out of order: read the file back
        hash = new Sha256();
        const buf = new Uint8Array(4 << 20);
        for (let pos = 0; pos < m.size;) {
          const n = f.sync.read(buf.subarray(0, Math.min(buf.length, m.size - pos)), { at: pos });
          if (n <= 0) throw new Error('read back failed');
          hash.update(buf.subarray(0, n));
          pos += n;
        }
      }
      f.sync.close();
      files.delete(m.id);
      return { sha256: toHex(hash.digest()) };
    }
    case 'abort': {
      const f = files.get(m.id);
      files.delete(m.id);
      try { f?.sync.close(); } catch { /* closed */ }
      if (m.name) { try { await (await dir()).removeEntry(m.name); } catch { /* gone */ } }
      return {};
    }
  }
  throw new Error('unknown op ' + m.op);
}

// Handle messages strictly in order (open before write before finish).
let queue = Promise.resolve();
self.onmessage = (ev) => {
  const m = ev.data;
  queue = queue.then(async () => {
    try {
      const { transfer, ...r } = await handle(m);
      self.postMessage({ op: 'done', id: m.id, seq: m.seq, ...r }, transfer || []);
    } catch (e) {
      self.postMessage({ op: 'error', id: m.id, seq: m.seq, error: String(e?.message || e) });
    }
  });
};
