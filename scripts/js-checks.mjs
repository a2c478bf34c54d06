// Unit checks of page helpers that need no browser (run by scripts/test):
// received files keep only image/video types the page shows inline; swarm
// messages round-trip; the swarm schedule (super-seeding, rarest first, a
// bad holder dropped); a sender's cancel ends a reception whenever it comes.
import { safeType, safeName } from '../web/static/js/transfer.js';
import * as P from '../web/static/js/protocol.js';
import { Swarm } from '../web/static/js/swarm.js';
import { fitPoster, formatDuration } from '../web/static/js/poster.js';
import { b64u, validateManifest, manifestPlaintext, MAX_POSTER_MANIFEST } from '../web/static/js/crypto.js';

let fails = 0;
const eq = (what, got, want) => { if (got !== want) { fails++; console.log(`FAIL ${what}: ${JSON.stringify(got)}, want ${JSON.stringify(want)}`); } };
for (const [t, want] of [
  ['image/png', 'image/png'], ['IMAGE/JPEG', 'image/jpeg'], ['video/mp4', 'video/mp4'], ['video/webm', 'video/webm'],
  ['text/html', 'application/octet-stream'], ['image/svg+xml', 'application/octet-stream'],
  ['application/pdf', 'application/octet-stream'], ['text/html; charset=utf-8', 'application/octet-stream'],
  ['image/png\n', 'application/octet-stream'], ['', 'application/octet-stream'], [undefined, 'application/octet-stream'],
]) eq(`safeType(${JSON.stringify(t)})`, safeType(t), want);
// Durations as the card (and the CLI's ls) shows them.
for (const [secs, want] of [[0.4, '0:00'], [0.5, '0:01'], [3.2, '0:03'], [59.6, '1:00'], [61.5, '1:02'], [3599.4, '59:59'], [3600, '1:00:00'], [36061, '10:01:01'], [1e7, '2777:46:40']]) {
  eq(`formatDuration(${secs})`, formatDuration(secs), want);
}
// The sender keeps a poster while the manifest fits 16 KiB and drops it (not the file, not the duration) beyond.
{
  const jpeg = new Uint8Array(8192).fill(0x5a); jpeg.set([0xff, 0xd8, 0xff, 0xe0]);
  const man = (pieces) => ({
    file: '00000000-0000-4000-8000-000000000009', name: 'holiday video 2026.mp4', type: 'video/mp4', size: pieces * 2000 * 64512, chunkSize: 64512,
    chunks: pieces * 2000, sha256: 'b'.repeat(64), key: 'A'.repeat(43), sess: 'a'.repeat(32), seq: 12, ts: 1764921600000,
    hashes: Array(pieces).fill('A'.repeat(43)), duration: 4023.125, poster: b64u(jpeg),
  });
  const small = fitPoster(man(100)), big = fitPoster(man(120));
  eq('poster kept in a 100-piece manifest', small.poster === man(1).poster && validateManifest(small), '');
  eq('poster kept: within 16 KiB', manifestPlaintext(small).length <= MAX_POSTER_MANIFEST, true);
  eq('poster dropped from a 120-piece manifest', 'poster' in big, false);
  eq('duration kept when the poster is dropped', big.duration, 4023.125);
}
// A name may be a relative path (a folder's files, docs/PROTOCOL.md "File names"):
// parts that climb or hide are cleaned away, never kept as a way out.
eq('safeName traversal', safeName('../../x'), 'x');
eq('safeName absolute', safeName('/etc/../passwd'), 'etc/passwd');
eq('safeName relative path kept', safeName('photos/2024/a.jpg'), 'photos/2024/a.jpg');
eq('safeName hidden part', safeName('a/.b/c'), 'a/b/c');
eq('safeName bidi', safeName('a\u202egnp.exe'), 'a_gnp.exe');
// Swarm data-channel messages (protocol v4) round-trip, and malformed ones are refused.
const file = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
for (const m of [
  { kind: P.DC_HAVE, file, flags: P.HAVE_FULL | P.HAVE_COMPLETE, ranges: [[0, 5], [7, 9]] },
  { kind: P.DC_HAVE, file, flags: 0, ranges: [] },
  { kind: P.DC_WANT, file, any: 64, indices: [] },
  { kind: P.DC_WANT, file, any: 0, indices: [3, 1, 4000000] },
  { kind: P.DC_HASH_REQ, file, piece: 2 },
  { kind: P.DC_HASHES, file, piece: 1, hashes: new Uint8Array(64).fill(9) },
  { kind: P.DC_CANCEL, file },
]) {
  const back = P.parseDC(P.dcMessage(m));
  const norm = (x) => JSON.stringify(x, (k, v) => (v instanceof Uint8Array ? [...v] : v));
  eq(`swarm message 0x${m.kind.toString(16)} round trip`, norm(back), norm(m));
}
const refused = (what, b) => { try { P.parseDC(Uint8Array.from(b)); fails++; console.log(`FAIL ${what} accepted`); } catch { /* refused */ } };
refused('have with unknown flags', [P.DC_HAVE, ...file, 4, 0, 0]);
refused('have with an empty range', [P.DC_HAVE, ...file, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 3]);
refused('want over the outstanding limit', [P.DC_WANT, ...file, 1, 1, 0, 0]);
refused('hashes not a multiple of 32', [P.DC_HASHES, ...file, 0, 0, 0, 0, 1, 2, 3]);
refused('cancel with a tail', [P.DC_CANCEL, ...file, 0]);
refused('short swarm message', [P.DC_CANCEL, 1, 2]);
// The swarm's schedule (swarm.js), without a browser: an origin serving
// `any` sends every chunk once before any twice (lowest never-sent first,
// then the lowest the asker lacks and was not sent); a fetcher asks other
// holders rarest chunk first and the origin only for what no one else has.
{
  const sw = new Swarm({ id: 'me', keys: {}, emit() {} });
  const fid = '00000000-0000-4000-8000-000000000001';
  const man = { file: fid, name: 'unit.bin', chunks: 10, size: 10 * 4, chunkSize: 4, hashes: ['A'.repeat(43)] };
  const e = sw._newEntry(man, 'me', new Uint8Array(1));
  e.held.fill(1);
  e.read = async () => new Uint8Array(4);
  e.cipher = { seal: async () => new Uint8Array(16) };
  const served = (peer) => peer.frames.map((b) => P.parseChunkUp(b).index);
  const mkPeer = (member) => ({ member, err: null, frames: [], sent: [], send: async function (b) { this.frames.push(b); }, notify(m) { this.sent.push(m); } });
  const a = mkPeer('a'), b = mkPeer('b');
  const want = async (peer, n) => { sw._want(peer, e, sw._peerState(e, peer.member), { indices: [], any: n }); await new Promise((r) => setTimeout(r, 10)); };
  await want(a, 3); await want(b, 4); await want(a, 5);
  eq('origin any: never-sent first, then what the asker was not sent', JSON.stringify([served(a), served(b)]), JSON.stringify([[0, 1, 2, 7, 8, 9, 3, 4], [3, 4, 5, 6]]));
  sw._peerState(e, 'b').have.fill(1, 0, 7);
  await want(b, 5);
  eq('origin any: skips what the asker holds', JSON.stringify(served(b).slice(4)), JSON.stringify([7, 8, 9]));

  // A fetcher: x holds 0..5, y holds 0..9, the origin everything.
  const g = sw._newEntry({ ...man, file: '00000000-0000-4000-8000-000000000002' }, 'o', new Uint8Array(1));
  g.hl.known.fill(1);
  g.r = { have: new Uint8Array(10), done: false, failed: false };
  const [x, y, o] = [mkPeer('x'), mkPeer('y'), mkPeer('o')];
  for (const p of [x, y, o]) sw._links.set(p.member, new Set([p]));
  sw._peerState(g, 'x').have.fill(1, 0, 6);
  sw._peerState(g, 'y').have.fill(1);
  sw._peerState(g, 'o').have.fill(1);
  sw._plan(g);
  const wants = (p) => p.sent.filter((m) => m.kind === P.DC_WANT);
  eq('fetcher: rarest first (y alone has 6..9)', JSON.stringify(wants(y)[0]?.indices.slice(0, 4).sort((p, q) => p - q)), JSON.stringify([6, 7, 8, 9]));
  eq('fetcher: every chunk asked once', JSON.stringify([...wants(x)[0].indices, ...wants(y)[0].indices].sort((p, q) => p - q)), JSON.stringify([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
  eq('fetcher: nothing asked of the origin that others hold', wants(o).length, 0);
  // y serves a chunk that does not match: dropped, its chunks asked elsewhere (the origin).
  sw.badChunk(g, 'y', 7);
  sw._plan(g);
  eq('bad holder cancelled', y.sent.some((m) => m.kind === P.DC_CANCEL), true);
  const again = [...wants(x).slice(1).flatMap((m) => m.indices)];
  eq('after a bad holder: the origin is asked (any) for what only it has now', wants(o)[0]?.any, 4);
  eq('after a bad holder: nothing more of x than it had', again.length, 0);
  // Sequential: lowest first, from the other holders and (by index) the origin.
  const h = sw._newEntry({ ...man, file: '00000000-0000-4000-8000-000000000003' }, 'o', new Uint8Array(1));
  h.hl.known.fill(1);
  h.sequential = true;
  h.r = { have: new Uint8Array(10), done: false, failed: false };
  const [x2, o2] = [mkPeer('x2'), mkPeer('o2')];
  h.origin = 'o2';
  for (const p of [x2, o2]) sw._links.set(p.member, new Set([p]));
  sw._peerState(h, 'x2').have.fill(1, 4, 10);
  sw._peerState(h, 'o2').have.fill(1);
  sw._plan(h);
  eq('sequential: the holder is asked lowest first', JSON.stringify(wants(x2)[0]?.indices), JSON.stringify([4, 5, 6, 7, 8, 9]));
  eq('sequential: the origin is asked by index for what only it has', JSON.stringify(wants(o2)[0]?.indices), JSON.stringify([0, 1, 2, 3]));
  sw.close();
}
// A sender's cancel (receiver.js, issue 16's flaky transfer_control (b)):
// whenever it comes — before the announcement, or while the reception's
// sink is being opened — the reception ends cancelled, its file is removed
// and it is not fetched; a fetch links to its origin even while another
// holder is linked; and an origin asked for a file it cancelled for the
// asker tells it so again (swarm.js, sender.js).
{
  const { Receiver } = await import('../web/static/js/receiver.js');
  const C = await import('../web/static/js/crypto.js');
  const origin = '00000000-0000-4000-8000-00000000000a';
  const mkMan = (n) => ({ file: `00000000-0000-4000-8000-0000000001${String(n).padStart(2, '0')}`, name: `c${n}.bin`, type: '', size: 40, chunks: 10, chunkSize: 4, sha256: String(n).repeat(64).slice(0, 64), key: C.b64u(C.randomBytes(32)) });
  const mkRecv = (openSink) => {
    const log = { fetched: [], aborted: [], xfer: [] };
    const rv = new Receiver({
      keys: { roomID: new Uint8Array(16) }, members: new Map([[origin, { online: true }]]), emit() {},
      sendSignal: async (to, b) => { log.xfer.push(b.op); }, openSink, enqueue() {}, ack() {},
    });
    rv.d.swarm = { fetch: (r) => log.fetched.push(r.man.file), finished() {}, link: () => null, entries: new Map() };
    return { rv, log };
  };
  const sink = (log, name) => ({ kind: 'test', write: async () => {}, abort: () => log.aborted.push(name) });
  const cancel = (rv, man) => rv.onXfer(origin, { kind: 'xfer', file: man.file, op: P.XferOp.CANCEL });

  // The cancel before the announcement (a holder's lib brings it later).
  {
    const { rv, log } = mkRecv(async (man) => sink(log, man.name));
    const man = mkMan(1);
    await cancel(rv, man);
    await rv.libEntry(man, origin, new Uint8Array(1));
    const r = rv._recvs.get(man.file);
    eq('cancel first: the reception is cancelled', r?.t.state, 'cancelled');
    eq('cancel first: nothing fetched, no file opened', log.fetched.length + log.aborted.length, 0);
  }
  // The cancel while the sink is being opened.
  {
    let open;
    const { rv, log } = mkRecv((man) => new Promise((res) => { open = () => res(sink(log, man.name)); }));
    const man = mkMan(2);
    const started = rv.libEntry(man, origin, new Uint8Array(1));
    for (let i = 0; i < 50 && !open; i++) await new Promise((r) => setTimeout(r, 5));
    await cancel(rv, man);
    open();
    await started;
    const r = rv._recvs.get(man.file);
    eq('cancel while opening: cancelled', r?.t.state, 'cancelled');
    eq('cancel while opening: by the sender', r?.t.error, 'Cancelled by the sender');
    eq('cancel while opening: its file is removed', JSON.stringify(log.aborted), JSON.stringify(['c2.bin']));
    eq('cancel while opening: not fetched', log.fetched.length, 0);
    eq('cancel while opening: no sink kept', r?.sink, null);
  }
  // The origin, asked for a file it cancelled for the asker, tells it again (at most every 2 s).
  {
    const told = [];
    const sw = new Swarm({ id: 'me', keys: {}, emit() {}, sender: { stillCancelled: (f, m) => told.push([f, m]) } });
    const man = { file: '00000000-0000-4000-8000-000000000201', name: 'x.bin', chunks: 10, size: 40, chunkSize: 4, hashes: ['A'.repeat(43)] };
    const e = sw._newEntry(man, 'me', new Uint8Array(1));
    e.held.fill(1);
    e.read = async () => new Uint8Array(4);
    e.cipher = { seal: async () => new Uint8Array(16) };
    const peer = { member: 'c2', err: null, frames: [], send: async function (b) { this.frames.push(b); }, notify() {} };
    sw.refuse(e, 'c2');
    sw._want(peer, e, sw._peerState(e, 'c2'), { indices: [0], any: 4 });
    await new Promise((r) => setTimeout(r, 10));
    eq('cancelled for the asker: nothing served', peer.frames.length, 0);
    eq('cancelled for the asker: it is told again', JSON.stringify(told), JSON.stringify([[man.file, 'c2']]));
    // A fetch whose origin is online but not linked links to it, even with another holder linked.
    const linked = [];
    const room = { id: 'me', keys: {}, emit() {}, members: new Map([['o', { online: true, verified: true }], ['h', { online: true, verified: true }]]), library: { link: (m) => linked.push(m) } };
    const fw = new Swarm(room);
    const g = fw._newEntry({ ...man, file: '00000000-0000-4000-8000-000000000202' }, 'o', new Uint8Array(1));
    g.r = { have: new Uint8Array(10), done: false, failed: false, path: '' };
    fw._peerState(g, 'o').have.fill(1);
    fw._peerState(g, 'h').have.fill(1);
    fw._links.set('h', new Set([{ member: 'h', err: null, notify() {} }]));
    fw._checkStalls();
    eq('a fetch links to its unlinked origin', JSON.stringify(linked), JSON.stringify(['o']));
    fw.close();
    sw.close();
    const { Sender } = await import('../web/static/js/sender.js');
    const sent = [];
    const snd = new Sender({ p2p: { sendSignal: async (to, b) => sent.push([to, b.op, b.file]) } });
    const t = { recipients: new Map([['c2', { state: 'cancelled', by: 'you' }], ['b', { state: 'sending' }]]), fileIds: new Set([man.file]) };
    snd.jobs.set('t1', { t });
    snd.byFile.set(man.file, 't1');
    snd.stillCancelled(man.file, 'c2');
    snd.stillCancelled(man.file, 'c2');
    snd.stillCancelled(man.file, 'b'); // still being sent to: no cancel
    await new Promise((r) => setTimeout(r, 10));
    eq('the sender re-tells the cancel once per 2 s, not to active recipients', JSON.stringify(sent), JSON.stringify([['c2', 'cancel', man.file]]));
  }
}
// Saved rooms (saved.js): a record opens with its passphrase only, the
// wrong one is a WrongPassphrase (nothing else), the KDF count and a
// random salt per record are as documented, and an altered or swapped
// record does not open.
{
  const S = await import('../web/static/js/saved.js');
  eq('PBKDF2 iterations', S.PBKDF2_ITERATIONS >= 600000, true);
  const pl = { secret: 'AAAAAAAAAAAAAAAAAAAAAA', ident: { member: '00000000-0000-4000-8000-000000000001', d: 'x', pub: 'y' }, name: 'Brave Otter', label: 'Family\u0007 room' };
  const { record: r1, key } = await S.sealRecord(pl, 'correct horse');
  const { record: r2 } = await S.sealRecord(pl, 'correct horse');
  eq('record: the iteration count kept', r1.kdf.iterations, S.PBKDF2_ITERATIONS);
  eq('record: a random salt per record', r1.salt !== r2.salt && r1.id !== r2.id, true);
  eq('record: no secret in clear', JSON.stringify(r1).includes(pl.secret) || JSON.stringify(r1).includes('Otter'), false);
  eq('record: label cleaned, in clear', r1.label, 'Family room');
  const back = await S.openRecord(r1, 'correct horse');
  eq('record opens with its passphrase', back.payload.secret === pl.secret && back.payload.name === pl.name && back.payload.ident.member === pl.ident.member, true);
  const wrong = async (what, rec, pass) => {
    try { await S.openRecord(rec, pass); eq(what, 'opened', 'WrongPassphrase'); } catch (e) { eq(what, e.name, 'WrongPassphrase'); }
  };
  await wrong('wrong passphrase', r1, 'correct horsE');
  await wrong('swapped ciphertext (another record id)', { ...r2, iv: r1.iv, data: r1.data }, 'correct horse');
  const r3 = await S.resealRecord(r1, key, { ...pl, name: 'Quiet Owl' });
  eq('resealed: fresh IV, same salt', r3.iv !== r1.iv && r3.salt === r1.salt, true);
  eq('resealed: opens with the passphrase', (await S.openRecord(r3, 'correct horse')).payload.name, 'Quiet Owl');
  try { await S.sealRecord(pl, 'short'); eq('short passphrase refused', 'sealed', 'refused'); } catch { /* refused */ }
}
// Display names (names.js): a stable default per member id, and a name
// from the room cleaned of control and bidi characters and bounded.
{
  const N = await import('../web/static/js/names.js');
  const id = '396b0c1e-0000-4000-8000-000000000000';
  eq('default name is stable', N.defaultName(id), N.defaultName(id));
  eq('default name: adjective animal', /^[A-Z][a-z]+ [A-Z][a-z]+$/.test(N.defaultName(id)), true);
  eq('names differ by id', N.defaultName(id) !== N.defaultName('f7ed0000-0000-4000-8000-000000000000'), true);
  eq('cleanName strips controls and bidi', N.cleanName(' Al\u202Eice\u0000\n  Smith\u200B '), 'Alice Smith');
  eq('cleanName bounds the length', [...N.cleanName('x'.repeat(100))].length, N.MAX_NAME_CHARS);
  eq('cleanName of nothing', N.cleanName('\u0001\u202E'), '');
  eq('cleanName of a non-string', N.cleanName(42), '');
  eq('cleanName keeps emoji', N.cleanName('Ana 👩\u200D💻'), 'Ana 👩\u200D💻');
}
console.log(`js checks: ${fails} failed`);
process.exit(fails ? 1 : 0);
