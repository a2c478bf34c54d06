// Runs every check of internal/crypto/testdata/vectors.json (and a few
// property checks) against web/static/js/crypto.js, inside the browser page.
// Loaded by webtest/vectors.mjs through a Playwright route; returns
// {checks, failures: [..]}.
import * as C from '/js/crypto.js';
import * as P from '/js/protocol.js';

export async function run(v) {
  const failures = [];
  let checks = 0;
  const h = C.fromHex, hx = C.toHex, te = new TextEncoder();
  const ok = (what, cond, detail = '') => { checks++; if (!cond) failures.push(`${what}${detail ? ': ' + detail : ''}`); };
  const eqHex = (what, got, want) => ok(what, hx(got) === want, `got ${hx(got)} want ${want}`);
  const eq = (what, got, want) => ok(what, got === want, `got ${JSON.stringify(got)} want ${JSON.stringify(want)}`);
  async function throws(what, fn, pred = () => true) {
    checks++;
    try {
      const r = await fn();
      failures.push(`${what}: did not fail (returned ${JSON.stringify(r)?.slice(0, 80)})`);
    } catch (e) {
      if (!pred(e)) failures.push(`${what}: failed the wrong way: ${e?.name}: ${e?.message}`);
    }
  }
  ok('version', v.version === C.VERSION);

  // Secret encodings and parsing.
  const secret = h(v.secret.secret_hex);
  eq('fragment', C.fragment(secret), v.secret.fragment);
  eq('mini code', C.miniCode(secret), v.secret.mini_code);
  eq('link', C.link(v.secret.link_base, secret), v.secret.link);
  for (const c of v.secret.parse_invite) {
    try {
      const r = C.parseInvite(c.input);
      eq(`parse ${JSON.stringify(c.input)} server`, r.server, c.server);
      eqHex(`parse ${JSON.stringify(c.input)} secret`, r.secret, c.secret_hex);
    } catch (e) {
      ok(`parse ${JSON.stringify(c.input)}`, false, e.message);
    }
  }
  for (const c of v.negative.invites) {
    await throws(`invite negative "${c.description}"`, () => C.parseInvite(c.input),
      (e) => e instanceof C.InviteError && e.code === c.error && !(c.input.length > 3 && e.message.includes(c.input)));
  }
  for (let i = 0; i < 64; i++) {
    const s = C.newSecret();
    const mc = C.miniCode(s);
    ok('mini code round trip', hx(C.parseInvite(mc).secret) === hx(s) && /^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){5}-[0-9A-HJKMNP-TV-Z]{3}$/.test(mc), mc);
    ok('fragment round trip', hx(C.parseInvite('#' + C.fragment(s)).secret) === hx(s));
    const l = C.parseInvite(C.link('http://127.0.0.1:8080/', s));
    ok('link round trip', l.server === 'http://127.0.0.1:8080' && hx(l.secret) === hx(s));
    // A substituted symbol is always caught as a typo (or as an invalid code).
    const pos = i % 27, alt = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
    const raw = mc.replaceAll('-', '');
    const sub = alt[(alt.indexOf(raw[pos]) + 1 + (i % 31)) % 32];
    await throws('mini code substitution caught', () => C.parseInvite(raw.slice(0, pos) + sub + raw.slice(pos + 1)), (e) => e.code === 'typo');
  }
  await throws('dotless i is not I', () => C.parseInvite(v.secret.mini_code.replace('1', '\u0131')), (e) => e.code === 'bad_secret');

  // Room keys.
  const rk = v.room_keys;
  const keys = await C.deriveRoom(h(rk.secret_hex));
  eqHex('room id', keys.roomID, rk.room_id_hex);
  eq('room id b64', keys.roomIDString, rk.room_id_base64url);
  eqHex('verifier', keys.verifier, rk.verifier_hex);
  eqHex('announce key', keys.announceKey, rk.announce_key_hex);
  eqHex('content key', keys.contentKey, rk.content_key_hex);
  eqHex('pair salt', keys.pairSalt, rk.pair_salt_hex);

  // Announcements.
  const an = v.announce;
  eqHex('announce input', keys._announceInput(an.member, h(an.pub_hex)), an.mac_input_hex);
  eqHex('announce mac', await keys.announce(an.member, h(an.pub_hex)), an.mac_hex);
  ok('announce verifies', await keys.verifyAnnounce(an.member, h(an.pub_hex), h(an.mac_hex)));
  for (const m of [v.pair.a, v.pair.b]) {
    eqHex('member announce', await keys.announce(m.member, h(m.public_uncompressed_hex)), m.announce_mac_hex);
  }
  for (const c of v.negative.announces) {
    ok(`announce negative "${c.description}"`, !(await keys.verifyAnnounce(c.member, h(c.pub_hex), h(c.mac_hex))));
  }

  // Pairwise keys.
  const PV = v.pair;
  const idA = await C.importIdentity(h(PV.a.private_scalar_hex), h(PV.a.public_uncompressed_hex));
  const idB = await C.importIdentity(h(PV.b.private_scalar_hex), h(PV.b.public_uncompressed_hex));
  const pubBKey = await crypto.subtle.importKey('raw', h(PV.b.public_uncompressed_hex), { name: 'ECDH', namedCurve: 'P-256' }, false, []);
  eqHex('ecdh shared', new Uint8Array(await crypto.subtle.deriveBits({ name: 'ECDH', public: pubBKey }, idA.priv, 256)), PV.ecdh_shared_hex);
  const mkPair = (self) => self === PV.a.member
    ? C.newPair(keys, PV.a.member, idA, PV.b.member, idB.pub)
    : C.newPair(keys, PV.b.member, idB, PV.a.member, idA.pub);
  const pa = await mkPair(PV.a.member), pb = await mkPair(PV.b.member);
  for (const [name, p] of [['a', pa], ['b', pb]]) {
    eqHex(`pair key (${name})`, p.pairKey, PV.pair_key_hex);
    eqHex(`confirm key (${name})`, p.confirmKey, PV.confirm_key_hex);
  }
  eqHex('signal key a->b', pa.sendKey, PV.signal_key_a_to_b_hex);
  eqHex('signal key a->b (recv at b)', pb.recvKey, PV.signal_key_a_to_b_hex);
  eqHex('signal key b->a', pb.sendKey, PV.signal_key_b_to_a_hex);
  eqHex('signal key b->a (recv at a)', pa.recvKey, PV.signal_key_b_to_a_hex);
  await throws('pair with self', () => C.newPair(keys, PV.a.member, idA, PV.a.member, idB.pub));
  await throws('pair with own public key', () => C.newPair(keys, PV.a.member, idA, PV.b.member, idA.pub));
  const offCurve = h(PV.b.public_uncompressed_hex); offCurve[64] ^= 1;
  await throws('pair with a point off the curve', () => C.newPair(keys, PV.a.member, idA, PV.b.member, offCurve));

  // Signals, sealed in order (counters start at 1 per direction), then opened by the other side.
  const pairOf = { [PV.a.member]: pa, [PV.b.member]: pb };
  for (const s of PV.signals) {
    const p = pairOf[s.from];
    const { nonce, aad } = p._nonceAAD(s.from, s.to, BigInt(s.counter));
    eqHex(`signal ${s.counter} nonce`, nonce, s.nonce_hex);
    eqHex(`signal ${s.counter} aad`, aad, s.aad_hex);
    eqHex(`signal ${s.from.slice(0, 4)} #${s.counter} sealed`, await p.sealSignal(te.encode(s.plaintext_utf8)), s.sealed_hex);
    try {
      eq(`signal ${s.counter} opens`, new TextDecoder().decode(await pairOf[s.to].openSignal(h(s.sealed_hex))), s.plaintext_utf8);
    } catch (e) { ok(`signal ${s.counter} opens`, false, e.message); }
  }
  for (const c of PV.confirms) {
    const author = pairOf[c.author], recip = pairOf[c.recipient];
    eqHex('confirm input', author._confirmInput(c.offerer_fingerprint, c.answerer_fingerprint, c.author_is_offerer, c.author, c.recipient), c.mac_input_hex);
    eqHex('confirm tag', await author.confirm(c.offerer_fingerprint, c.answerer_fingerprint, c.author_is_offerer), c.tag_hex);
    ok('confirm verifies', await recip.verifyConfirm(c.offerer_fingerprint, c.answerer_fingerprint, c.author_is_offerer, h(c.tag_hex)));
  }
  for (const c of v.negative.confirms) {
    ok(`confirm negative "${c.description}"`, !(await pairOf[c.verifier].verifyConfirm(c.offerer_fingerprint, c.answerer_fingerprint, c.author_is_offerer, h(c.tag_hex))));
  }
  for (const c of v.negative.signals) {
    const recv = await mkPair(c.to); // fresh receiver: counters from zero
    for (let i = 0; i < c.sequence_hex.length; i++) {
      const want = c.expect[i];
      let got = 'ok';
      try { await recv.openSignal(h(c.sequence_hex[i])); } catch (e) { got = e instanceof C.ReplayError ? 'replay' : e instanceof C.OpenError ? 'open' : 'other:' + e.message; }
      eq(`signal negative "${c.description}" step ${i}`, got, want);
    }
  }

  // Envelopes.
  async function checkEnvelope(e) {
    const meta = { sender: e.sender, file: e.file, chunks: e.chunks };
    const fixed = { id: h(e.id_hex), msgKey: h(e.message_key_hex), nonce: h(e.nonce_hex) };
    eqHex(`envelope "${e.description}" aad`, keys._envelopeAAD(meta, fixed.id), e.aad_hex);
    if (e.plaintext_hex) eqHex(`envelope "${e.description}" plaintext`, te.encode(e.plaintext_utf8), e.plaintext_hex);
    const { id, sealed } = await keys.sealEnvelope(meta, te.encode(e.plaintext_utf8), fixed);
    eqHex(`envelope "${e.description}" id`, id, e.id_hex);
    eqHex(`envelope "${e.description}" sealed`, sealed, e.sealed_hex);
    eqHex(`envelope "${e.description}" wrapped key`, sealed.subarray(29, 77), e.wrapped_key_hex);
    const opened = await keys.openEnvelope(meta, h(e.sealed_hex));
    eqHex(`envelope "${e.description}" opened id`, opened.id, e.id_hex);
    eq(`envelope "${e.description}" opened`, new TextDecoder().decode(opened.plaintext), e.plaintext_utf8);
  }
  for (const e of v.envelopes) await checkEnvelope(e);
  await checkEnvelope(v.manifest.envelope);
  for (const e of v.negative.envelopes) {
    await throws(`envelope negative "${e.description}"`, () => keys.openEnvelope({ sender: e.sender, file: e.file, chunks: e.chunks }, h(e.sealed_hex)), (x) => x instanceof C.OpenError);
  }
  // A fresh envelope round-trips, and differs each time.
  const e1 = await keys.sealEnvelope({ sender: PV.a.member }, te.encode('x'));
  const e2 = await keys.sealEnvelope({ sender: PV.a.member }, te.encode('x'));
  ok('envelopes are randomized', hx(e1.sealed) !== hx(e2.sealed));
  eq('fresh envelope opens', new TextDecoder().decode((await keys.openEnvelope({ sender: PV.a.member }, e1.sealed)).plaintext), 'x');

  // Manifests.
  const man = v.manifest.manifest;
  eq('manifest json', new TextDecoder().decode(C.manifestPlaintext(man)), v.manifest.envelope.plaintext_utf8);
  const me = v.manifest.envelope;
  eqHex('manifest sealed', await keys.sealManifest(me.sender, man, { id: h(me.id_hex), msgKey: h(me.message_key_hex), nonce: h(me.nonce_hex) }), me.sealed_hex);
  try {
    const got = await keys.openManifest({ sender: me.sender, file: me.file, chunks: me.chunks }, h(me.sealed_hex));
    eq('manifest opened', JSON.stringify(got), JSON.stringify(Object.fromEntries(Object.entries(man))));
  } catch (e) { ok('manifest opened', false, e.message); }
  for (const m of v.negative.manifests) {
    await throws(`manifest negative "${m.description}"`, () => keys.openManifest({ sender: m.sender, file: m.file, chunks: m.chunks }, h(m.sealed_hex)));
  }
  // A name may be a relative path (a file from a folder), never one that climbs or is absolute.
  for (const name of ['a/../b', '/a', 'a//b', 'a/', './a', 'a\\b']) {
    await throws(`seal invalid manifest named ${JSON.stringify(name)}`, () => keys.sealManifest(me.sender, { ...man, name }));
  }
  try {
    const sealed = await keys.sealManifest(me.sender, { ...man, name: 'photos/2024/a.jpg' });
    const got = await keys.openManifest({ sender: me.sender, file: me.file, chunks: me.chunks }, sealed);
    eq('a manifest named by a relative path', got.name, 'photos/2024/a.jpg');
  } catch (e) { ok('a manifest named by a relative path', false, e.message); }
  // The optional preview: a NaN duration is refused on seal; a manifest
  // with a poster over 16 KiB of JSON too; unknown keys (a later version's
  // fields) are ignored when opening.
  await throws('seal manifest with a NaN duration', () => keys.sealManifest(me.sender, { ...man, duration: NaN }));
  await throws('seal manifest with a poster, over 16 KiB', () => keys.sealManifest(me.sender, { ...man, type: 'x'.repeat(16 << 10) }));
  ok('the same manifest without its poster seals', (await keys.sealManifest(me.sender, { ...man, type: 'x'.repeat(16 << 10), poster: undefined })).length > 16 << 10);
  {
    const pt = me.plaintext_utf8.replace(/}$/, ',"future":{"x":[1]}}');
    const meta = { sender: me.sender, file: me.file, chunks: me.chunks };
    const { sealed } = await keys.sealEnvelope(meta, te.encode(pt));
    try {
      const got = await keys.openManifest(meta, sealed);
      eq('manifest with an unknown key opens', JSON.stringify(got), JSON.stringify(man));
    } catch (e) { ok('manifest with an unknown key opens', false, e.message); }
  }

  // Chunks.
  for (const set of v.chunk_sets) {
    eqHex(`chunk key "${set.description}"`, await C.chunkKeyBytes(h(set.file_key_hex)), set.chunk_key_hex);
    eq(`file id bytes "${set.description}"`, hx(C.uuidBytes(set.file)), set.file_id_hex);
    const ciph = await C.newChunkCipher(h(set.file_key_hex), h(set.room_id_hex), set.sender, h(set.file_id_hex), set.count, set.size);
    for (const c of set.chunks) {
      const { nonce, aad } = ciph._nonceAAD(c.index, c.final);
      eqHex(`chunk ${c.index} nonce`, nonce, c.nonce_hex);
      eqHex(`chunk ${c.index} aad`, aad, c.aad_hex);
      eqHex(`chunk ${c.index} sealed`, await ciph.seal(c.index, h(c.plaintext_hex)), c.sealed_hex);
      try { eqHex(`chunk ${c.index} opened`, await ciph.open(c.index, c.final, h(c.sealed_hex)), c.plaintext_hex); } catch (e) { ok(`chunk ${c.index} opened`, false, e.message); }
    }
  }
  {
    const set = v.chunk_sets[0];
    const whole = C.concat(...set.chunks.map((c) => h(c.plaintext_hex)));
    eqHex('manifest sha256 is the chunk set file', await C.sha256(whole), v.manifest.manifest.sha256);
  }
  for (const b of v.negative.chunks) {
    const ciph = await C.newChunkCipher(h(b.file_key_hex), h(b.room_id_hex), b.sender, h(b.file_id_hex), b.count, b.size);
    await throws(`chunk negative "${b.description}"`, () => ciph.open(b.index, b.final, h(b.sealed_hex)), (e) => e instanceof C.OpenError);
  }
  for (const c of v.chunk_counts) eq(`chunk count ${c.size}/${c.chunk_size}`, C.chunkCount(c.size, c.chunk_size), c.count);
  eq('chunk count invalid', C.chunkCount(-1, 10), 0);

  // Streaming SHA-256 against WebCrypto, with odd split points.
  for (const n of [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 64512, 3 * 64512 + 17, 1 << 20]) {
    const data = new Uint8Array(n);
    for (let i = 0; i < n; i += 65536) crypto.getRandomValues(data.subarray(i, Math.min(n, i + 65536)));
    const s = new C.Sha256();
    let off = 0, step = 1;
    while (off < n) { const e = Math.min(n, off + step); s.update(data.subarray(off, e)); off = e; step = (step * 7 + 13) % 70001; }
    eqHex(`sha256 streaming ${n}`, s.digest(), hx(await C.sha256(data)));
  }
  eqHex('sha256 abc', new C.Sha256().update(te.encode('abc')).digest(), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');

  // Chat padding: always a multiple of 256 bytes, the text intact.
  for (const text of ['', 'hi', 'x'.repeat(200), 'x'.repeat(225), 'x'.repeat(226), 'x'.repeat(227), 'é☂ "quoted" <tag> & \\ \n', 'y'.repeat(5000)]) {
    const stamp = { sess: 'ab'.repeat(16), seq: text.length + 1, ts: 1800000000123 };
    const pt = C.chatPlaintext(text, stamp);
    const o = JSON.parse(new TextDecoder().decode(pt));
    ok(`chat padding (${text.length})`, pt.length % 256 === 0 && o.kind === 'chat' && o.text === text && /^ *$/.test(o.pad) &&
      o.sess === stamp.sess && o.seq === stamp.seq && o.ts === stamp.ts, `len ${pt.length}`);
  }

  // base64url: round trip and strictness (as Go's RawURLEncoding.Strict()).
  for (let n = 0; n < 40; n++) {
    const b = crypto.getRandomValues(new Uint8Array(n));
    const s = C.b64u(b);
    const want = btoa(String.fromCharCode(...b)).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
    ok(`b64u ${n}`, s === want && hx(C.unb64u(s)) === hx(b));
  }
  for (const bad of ['AB', 'A', 'AAA=', 'AA+A', 'AA/A', 'AAé']) await throws(`b64u strict ${bad}`, () => C.unb64u(bad));

  // Frames.
  const fid = C.uuidBytes(man.file);
  const sealed = crypto.getRandomValues(new Uint8Array(100));
  const up = P.chunkUpFrame(fid, 2, 3, sealed);
  const pu = P.parseChunkUp(up);
  ok('chunk up round trip', up.length === 127 && up[26] === 1 && pu.index === 2 && pu.count === 3 && pu.final && hx(pu.file) === hx(fid) && hx(pu.sealed) === hx(sealed));
  const down = new Uint8Array(51 + 100);
  down.set([1, 2]); new DataView(down.buffer).setBigUint64(2, 77n); down.set(h(PV.a.member.replaceAll('-', '')), 10); down.set(up.subarray(2, 27), 26); down.set(sealed, 51);
  const pd = P.parseChunkDown(down);
  ok('chunk down parse', pd.item === 77 && C.uuidString(pd.sender) === PV.a.member && pd.index === 2 && pd.final && hx(pd.sealed) === hx(sealed));
  await throws('chunk up: final flag on a non-final chunk', () => { const b = P.chunkUpFrame(fid, 1, 3, sealed); b[26] = 1; return P.parseChunkUp(b); });
  await throws('chunk down: item 0', () => { const b = Uint8Array.from(down); b.fill(0, 2, 10); return P.parseChunkDown(b); });

  return { checks, failures };
}
