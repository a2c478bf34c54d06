// Unit checks of page helpers that need no browser (run by scripts/test):
// received files keep only image/video types the page shows inline.
import { safeType, safeName } from '../web/static/js/transfer.js';

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
console.log(`js checks: ${fails} failed`);
process.exit(fails ? 1 : 0);
