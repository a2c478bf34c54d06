// Checks the page's chunk hashes and piece commitment (web/static/js/hashes.js)
// against the vectors Go's client/transfer checks too
// (client/transfer/testdata/hash_vectors.json). Exits non-zero on a mismatch.
import { readFileSync } from 'node:fs';
import { hashFile, HashList } from '../web/static/js/hashes.js';
import { HASHES_PER_PIECE } from '../web/static/js/protocol.js';

const v = JSON.parse(readFileSync(new URL('../client/transfer/testdata/hash_vectors.json', import.meta.url), 'utf8'));
let checks = 0, fails = 0;
const eq = (what, got, want) => {
  checks++;
  if (JSON.stringify(got) !== JSON.stringify(want)) { fails++; console.log(`FAIL ${what}: ${JSON.stringify(got)}, want ${JSON.stringify(want)}`); }
};
eq('hashesPerPiece', HASHES_PER_PIECE, v.hashesPerPiece);
const hex = (b) => Buffer.from(b).toString('hex');
for (const c of v.cases) {
  const content = new Uint8Array(c.size);
  for (let i = 0; i < c.size; i++) content[i] = (i * 7 + Math.floor(i / 251)) & 0xff;
  eq(`${c.name}: content`, hex(content.subarray(0, 64)), c.content);
  const got = await hashFile(new Blob([content]), c.chunkSize);
  const n = got.chunkHashes.length / 32;
  const shown = [];
  for (let i = 0; i < n; i++) if (i < 3 || i >= n - 3) shown.push(hex(got.chunkHashes.subarray(32 * i, 32 * i + 32)));
  eq(`${c.name}: sha256`, got.sha256, c.sha256);
  eq(`${c.name}: chunk hashes`, shown, c.chunkHashes);
  eq(`${c.name}: pieces`, got.commit.length, c.pieces);
  eq(`${c.name}: hashes`, got.commit, c.hashes);
  // The receiver's side: the pieces verify against the commitment, a chunk
  // verifies against its hash, and a flipped byte does not.
  const hl = new HashList({ chunks: n, hashes: c.hashes });
  await hl.fill(got.chunkHashes);
  const last = n - 1;
  const plain = content.subarray(last * c.chunkSize, Math.min(c.size, (last + 1) * c.chunkSize));
  eq(`${c.name}: check last chunk`, await hl.check(last, plain), true);
  if (plain.length) {
    const bad = plain.slice(); bad[0] ^= 1;
    eq(`${c.name}: corrupt chunk refused`, await hl.check(last, bad), false);
  }
  const wrong = got.chunkHashes.slice(0, 32 * Math.min(n, HASHES_PER_PIECE)); wrong[5] ^= 1;
  eq(`${c.name}: corrupt piece refused`, await new HashList({ chunks: n, hashes: c.hashes }).setPiece(0, wrong), false);
}
if (checks < 20) { console.log(`FAIL only ${checks} checks`); fails++; }
console.log(`hash vectors: ${checks} checks, ${fails} failed`);
process.exit(fails ? 1 : 0);
