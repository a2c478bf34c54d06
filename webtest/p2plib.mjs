// Helpers shared by the browser tests and the benchmark: a server with the
// embedded TURN server on a free port, rooms made through the UI, big random
// files written and hashed on disk in slices (never whole in memory), and
// reading back what a page received from its OPFS in slices too; chat, progress
// and online-member waits on the room page.
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { openSync, writeSync, closeSync, readSync } from 'node:fs';
import { randomFillSync, createHash } from 'node:crypto';
import { startServer, assert } from './lib.mjs';

export const MIB = 1 << 20;
export const SLICE = 4 * MIB; // OPFS read-back and hashing granularity
export const T = { timeout: Number(process.env.WEBTEST_T_MS || 120000) };

/** A port free on 127.0.0.1 for both TCP and UDP (the TURN server takes both). */
export async function freePort() {
  for (let i = 0; i < 50; i++) {
    const port = await new Promise((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
    });
    const ok = await new Promise((resolve) => {
      const u = createSocket('udp4');
      u.once('error', () => resolve(false));
      u.bind(port, '127.0.0.1', () => u.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free port');
}

/** `cloakroom serve` with its TURN server on (lib.startServer turns it off). */
export async function startServerWithTURN(bin, extra = []) {
  return startServer(bin, ['--turn-port', String(await freePort()), ...extra]);
}

/** Records every RTCPeerConnection the page makes in window.__pcs (tests
 * break sessions with it; the app does not know). */
export async function recordPeerConnections(ctx) {
  await ctx.addInitScript(() => {
    window.__pcs = [];
    const Orig = window.RTCPeerConnection;
    window.RTCPeerConnection = class extends Orig {
      constructor(...a) { super(...a); window.__pcs.push(this); }
    };
  });
}

/** Simulates a network for the page's peer connections, switchable at run
 * time with window.__network: 'open' (default), 'no-direct' (only relay
 * candidates can work: as behind a firewall that passes only the TURN
 * server) or 'blocked' (no candidate at all). */
export async function simulateNetwork(ctx) {
  await ctx.addInitScript(() => {
    window.__network = 'open';
    const Orig = window.RTCPeerConnection;
    window.RTCPeerConnection = class extends Orig {
      constructor(cfg = {}, ...rest) {
        if (window.__network === 'no-direct') cfg = { ...cfg, iceTransportPolicy: 'relay' };
        if (window.__network === 'blocked') cfg = { ...cfg, iceServers: [], iceTransportPolicy: 'relay' };
        super(cfg, ...rest);
      }
    };
  });
}

/** Counts the chunk writes the page posts to its OPFS worker, per file id
 * (window.__writes). */
export async function countStoreWrites(ctx) {
  await ctx.addInitScript(() => {
    window.__writes = {};
    const post = Worker.prototype.postMessage;
    Worker.prototype.postMessage = function (m, ...rest) {
      if (m && m.op === 'write') window.__writes[m.id] = (window.__writes[m.id] || 0) + 1;
      if (m && m.op === 'writev') window.__writes[m.id] = (window.__writes[m.id] || 0) + m.pos.length; // writes batched (store.js)
      return post.call(this, m, ...rest);
    };
  });
}

/** Writes size random bytes to path in 4 MiB pieces; returns {sha256,
 * slices}: the file's SHA-256 and that of every 4 MiB slice. */
export function writeRandomFile(path, size) {
  const fd = openSync(path, 'w');
  const whole = createHash('sha256');
  const slices = [];
  const buf = Buffer.allocUnsafe(SLICE);
  try {
    for (let off = 0; off < size; off += SLICE) {
      const n = Math.min(SLICE, size - off);
      randomFillSync(buf, 0, n);
      const b = buf.subarray(0, n);
      writeSync(fd, b);
      whole.update(b);
      slices.push(createHash('sha256').update(b).digest('hex'));
    }
  } finally { closeSync(fd); }
  return { sha256: whole.digest('hex'), slices };
}

/** SHA-256 of a file on disk, read in slices. */
export function hashFile(path) {
  const fd = openSync(path, 'r');
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(SLICE);
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, SLICE, null);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally { closeSync(fd); }
  return h.digest('hex');
}

/** A creates a room through the UI at query (e.g. '?transport=turn'); B…
 * join by its link (with the same query). Returns the link. */
export async function createAndJoin(url, query, creator, joiners) {
  await creator.goto(url + '/' + query);
  await creator.click('#create');
  await creator.waitForSelector('#conn-status[data-state=connected]', T);
  const link = await creator.inputValue('#invite-link');
  const frag = link.slice(link.indexOf('#'));
  for (const p of joiners) {
    await p.goto(url + '/' + query + frag);
    await p.waitForSelector('#conn-status[data-state=connected]', T);
  }
  return link;
}

export async function waitOnline(page, n) {
  await page.waitForFunction((n) => document.querySelectorAll('#member-list li:not(.me)[data-online=true]').length === n, n, T);
}

const fileSel = (dir, name) => `#feed li.file[data-direction=${dir}]:has(.file-name:text-is("${name}"))`;

/** Waits for the card of a file (dir 'send' or 'recv') to finish; returns
 * its attributes and status text. Fails with the page's message if it failed. */
export async function finishedCard(page, dir, name, { allowFail = false } = {}) {
  const sel = fileSel(dir, name);
  await page.waitForSelector(`${sel}[data-state=done], ${sel}[data-state=failed]`, T);
  const li = page.locator(sel).last();
  const card = {
    id: await li.getAttribute('data-file'),
    state: await li.getAttribute('data-state'),
    path: await li.getAttribute('data-path'),
    storage: await li.getAttribute('data-storage'),
    sha256: await li.getAttribute('data-sha256'),
    status: (await li.locator('.status').textContent()).trim(),
  };
  if (!allowFail) assert(card.state === 'done', `${dir} ${name}: ${card.state}: ${card.status}`);
  return card;
}

/** Checks a received file: stored in OPFS by the worker, the SHA-256 the
 * page reports equals the sender's, and the OPFS file itself, read back in
 * 4 MiB slices each hashed by WebCrypto (independent of the page's own
 * streaming hash, and never the whole file in page memory), has the
 * sender's slices. */
export async function checkReceived(page, card, want) {
  assert(card.storage === 'opfs-worker', `stored via ${card.storage}, want opfs-worker`);
  assert(card.sha256 === want.sha256, `page sha256 ${card.sha256}, sender ${want.sha256}`);
  const got = await page.evaluate(async ({ id, slice }) => {
    const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('received');
    const f = await (await dir.getFileHandle(id)).getFile();
    const out = [];
    for (let off = 0; off < f.size; off += slice) {
      const d = new Uint8Array(await crypto.subtle.digest('SHA-256', await f.slice(off, Math.min(f.size, off + slice)).arrayBuffer()));
      out.push([...d].map((x) => x.toString(16).padStart(2, '0')).join(''));
    }
    return { size: f.size, slices: out };
  }, { id: card.id, slice: SLICE });
  assert(got.slices.length === want.slices.length, `OPFS file of ${got.size} bytes: ${got.slices.length} slices, want ${want.slices.length}`);
  const bad = got.slices.findIndex((s, i) => s !== want.slices[i]);
  assert(bad < 0, `OPFS file differs from the sent file in slice ${bad}`);
}

/** The speed a finished card shows ("… · 31 MB/s"), for logs only. */
export function shownSpeed(card) {
  const m = /· ([0-9.]+ [kMG]B)\/s/.exec(card.status);
  return m ? m[1] + '/s' : '?';
}

/** Sends a chat line from one page and waits until the server confirmed it
 * there and it shows in the other page. */
export async function chat(from, to, text) {
  await from.fill('#chat-input', text);
  await from.press('#chat-input', 'Enter');
  await from.waitForFunction((t) => [...document.querySelectorAll('#feed li.chat.mine:not(.pending) .text')].some((e) => e.textContent === t), text, T);
  await to.waitForFunction((t) => [...document.querySelectorAll('#feed li.chat:not(.mine) .text')].some((e) => e.textContent === t), text, T);
}

/** Waits until the page's reception of name has passed fraction of the file. */
export async function waitProgress(page, name, fraction) {
  await page.waitForFunction(({ name, fraction }) => [...document.querySelectorAll('#feed li.file[data-direction=recv]')]
    .some((li) => li.querySelector('.file-name')?.textContent === name && li.dataset.state === 'receiving' && li.querySelector('progress').value >= fraction),
  { name, fraction }, { ...T, polling: 50 });
}

/** The last lines of a CLI's output, without progress-bar redraws. */
export function tail(s) { return s.split('\n').filter((l) => l && !l.includes('\r')).slice(-8).join('\n'); }
