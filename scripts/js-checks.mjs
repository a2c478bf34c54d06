// Unit checks of page helpers that need no browser (run by scripts/test):
// received files keep only image/video types the page shows inline.
import { safeType, safeName } from '../web/static/js/transfer.js';
import * as P from '../web/static/js/protocol.js';

let fails = 0;
const eq = (what, got, want) => { if (got !== want) { fails++; console.log(`FAIL ${what}: ${JSON.stringify(got)}, want ${JSON.stringify(want)}`); } };
for (const [t, want] of [
  ['image/png', 'image/png'], ['IMAGE/JPEG', 'image/jpeg'], ['video/mp4', 'video/mp4'], ['video/webm', 'video/webm'],
  ['text/html', 'application/octet-stream'], ['image/svg+xml', 'application/octet-stream'],
  ['application/pdf', 'application/octet-stream'], ['text/html; charset=utf-8', 'application/octet-stream'],
  ['image/png\n', 'application/octet-stream'], ['', 'application/octet-stream'], [undefined, 'application/octet-stream'],
]) eq(`safeType(${JSON.stringify(t)})`, safeType(t), want);
eq('safeName traversal', safeName('../../x'), '_.._x');
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
console.log(`js checks: ${fails} failed`);
process.exit(fails ? 1 : 0);
