// Benchmark of the browser client's peer-to-peer path (not in run.mjs's
// default list). Usage, from the repository root:
//
//   node webtest/bench.mjs                 # 256 MiB; BENCH_MIB=… to change
//
// Measures, in one run of two headless Chromium browsers on this machine:
//   1. baseline: a bare RTCDataChannel between two pages (the same two
//      browsers), BENCH_MIB of 64 KiB messages, no crypto, the same flow
//      control as the client (pause above 8 MiB buffered, resume on
//      bufferedamountlow at 2 MiB), timed from the receiver's first message
//      to its last; run before and after the transfers below;
//   2. browser -> browser: a BENCH_MIB random file through the UI on
//      ?transport=p2p (direct data channel), with everything the client does
//      (sealed manifest, AES-GCM per chunk, OPFS writes in a worker, SHA-256
//      check). Two figures: the data-channel phase (receiver's first to last
//      message on the session, comparable to the baseline) and the whole
//      reception as the page reports it (manifest in -> file verified);
//   3. browser -> Go CLI (`cloakroom recv --transport p2p`): the same file,
//      timed on the page from the first message sent to the receiver's
//      verdict (DCDone).
// Prints MB/s (10^6 bytes per second) and the ratios to the baseline.
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { main, buildBinary, launch, tempDir, run, assert } from './lib.mjs';
import { MIB, startServerWithTURN, writeRandomFile, hashFile, createAndJoin, waitOnline, finishedCard, checkReceived } from './p2plib.mjs';

const SIZE = Number(process.env.BENCH_MIB || 256) * MIB;
const mbps = (bytes, ms) => bytes / 1e6 / (ms / 1000);

await main('bench', async () => {
  const bin = buildBinary();
  const srv = await startServerWithTURN(bin);
  const dir = tempDir();
  const ctxA = await launch({ name: 'A' });
  const ctxB = await launch({ name: 'B' });
  for (const c of [ctxA, ctxB]) await timeDataChannels(c);
  const A = ctxA.pages()[0] ?? await ctxA.newPage();
  const B = ctxB.pages()[0] ?? await ctxB.newPage();

  const base1 = await bareDataChannel(ctxA, ctxB, srv.url, SIZE);
  console.log(`bench: baseline (bare data channel) ${base1.toFixed(1)} MB/s`);

  // Browser -> browser.
  await createAndJoin(srv.url, '?transport=p2p', A, [B]);
  await waitOnline(A, 1);
  const f = join(dir, 'bench.bin');
  const want = writeRandomFile(f, SIZE);
  await A.evaluate(() => { window.__dcStats.length = 0; });
  await B.evaluate(() => { window.__dcStats.length = 0; });
  await A.setInputFiles('#file-input', f);
  const rc = await finishedCard(B, 'recv', 'bench.bin');
  assert(rc.path === 'direct', `path ${rc.path}`);
  await checkReceived(B, rc, want);
  const st = await B.evaluate(() => window.__dcStats.find((s) => s.recvBytes > 0));
  const dcPhase = mbps(st.recvBytes, st.lastRecv - st.firstRecv);
  const secs = Number(/· ([0-9.]+) s ·/.exec(rc.status)?.[1]);
  const whole = mbps(SIZE, secs * 1000);
  console.log(`bench: browser -> browser ${dcPhase.toFixed(1)} MB/s on the data channel, ${whole.toFixed(1)} MB/s manifest to verified file (${rc.status})`);

  // Browser -> Go CLI (B leaves first, so A sends to the CLI alone).
  await B.click('#leave');
  await B.click('#leave-ok'); // Leave asks first (issue 14)
  await waitOnline(A, 0);
  const recvDir = join(dir, 'cli');
  mkdirSync(recvDir);
  const link = await A.inputValue('#invite-link');
  const recv = run(bin, ['recv', '--new-only', '--transport', 'p2p', '--count', '1', '-o', recvDir, link], { timeoutMs: 600000 });
  await waitOnline(A, 1);
  await A.evaluate(() => { window.__dcStats.length = 0; });
  await A.setInputFiles('#file-input', f);
  const rr = await recv.done;
  assert(rr.code === 0, `cloakroom recv exit ${rr.code}: ${rr.stderr.slice(-500)}`);
  assert(hashFile(join(recvDir, 'bench.bin')) === want.sha256, 'the CLI got the same bytes');
  const sc = await finishedCard(A, 'send', 'bench.bin');
  const sa = await A.evaluate(() => window.__dcStats.find((s) => s.sentBytes > 1 << 20));
  const toCLI = mbps(SIZE, sa.lastRecv - sa.firstSent);
  console.log(`bench: browser -> Go CLI ${toCLI.toFixed(1)} MB/s, first chunk sent to the CLI's verdict (${sc.status})`);

  const base2 = await bareDataChannel(ctxA, ctxB, srv.url, SIZE);
  console.log(`bench: baseline again ${base2.toFixed(1)} MB/s`);
  const base = (base1 + base2) / 2;
  console.log('\n| size | bare data channel (before / after) | browser -> browser: data channel | manifest to verified file | ratio (data channel / bare) | browser -> Go CLI | ratio |');
  console.log('|---|---|---|---|---|---|---|');
  console.log(`| ${SIZE / MIB} MiB | ${base1.toFixed(1)} / ${base2.toFixed(1)} MB/s | ${dcPhase.toFixed(1)} MB/s | ${whole.toFixed(1)} MB/s | ${(dcPhase / base).toFixed(2)} | ${toCLI.toFixed(1)} MB/s | ${(toCLI / base).toFixed(2)} |`);
});

/** Records, per data channel of the page, when bytes were first/last sent
 * and received (window.__dcStats): the benchmark reads the product's timing
 * without touching the product. */
async function timeDataChannels(ctx) {
  await ctx.addInitScript(() => {
    window.__dcStats = [];
    const watch = (dc) => {
      const s = { label: dc.label, firstSent: 0, sentBytes: 0, firstRecv: 0, lastRecv: 0, recvBytes: 0 };
      window.__dcStats.push(s);
      const send = dc.send.bind(dc);
      dc.send = (d) => { if (!s.firstSent) s.firstSent = performance.now(); s.sentBytes += d.byteLength ?? d.length; return send(d); };
      dc.addEventListener('message', (e) => {
        const now = performance.now();
        if (!s.firstRecv) s.firstRecv = now;
        s.lastRecv = now;
        s.recvBytes += e.data.byteLength ?? e.data.length;
      });
    };
    const Orig = window.RTCPeerConnection;
    window.RTCPeerConnection = class extends Orig {
      constructor(...a) {
        super(...a);
        this.addEventListener('datachannel', (e) => watch(e.channel));
      }
      createDataChannel(...a) { const dc = super.createDataChannel(...a); watch(dc); return dc; }
    };
  });
}

/** A bare data channel between a new page in each browser: size bytes of
 * 64 KiB messages; returns MB/s from the receiver's first to last message. */
async function bareDataChannel(ctxA, ctxB, url, size) {
  const pa = await ctxA.newPage();
  const pb = await ctxB.newPage();
  try {
    for (const p of [pa, pb]) await p.goto(url + '/healthz');
    const setup = (offerer) => {
      window.bpc = new RTCPeerConnection({ iceServers: [] });
      window.bcands = [];
      bpc.onicecandidate = (e) => { if (e.candidate) bcands.push(e.candidate.toJSON()); };
      window.bopen = new Promise((res) => {
        const on = (dc) => { window.bdc = dc; dc.binaryType = 'arraybuffer'; if (dc.readyState === 'open') res(); else dc.onopen = () => res(); };
        if (offerer) on(bpc.createDataChannel('bare', { ordered: true })); else bpc.ondatachannel = (e) => on(e.channel);
      });
    };
    await pa.evaluate(setup, true);
    await pb.evaluate(setup, false);
    const offer = await pa.evaluate(async () => { const o = await bpc.createOffer(); await bpc.setLocalDescription(o); return { type: o.type, sdp: o.sdp }; });
    const answer = await pb.evaluate(async (o) => { await bpc.setRemoteDescription(o); const a = await bpc.createAnswer(); await bpc.setLocalDescription(a); return { type: a.type, sdp: a.sdp }; }, offer);
    await pa.evaluate((a) => bpc.setRemoteDescription(a), answer);
    const exchange = async () => {
      for (const c of await pa.evaluate(() => bcands.splice(0))) await pb.evaluate((c) => bpc.addIceCandidate(c), c);
      for (const c of await pb.evaluate(() => bcands.splice(0))) await pa.evaluate((c) => bpc.addIceCandidate(c), c);
    };
    for (let i = 0; i < 50 && !(await pa.evaluate(() => bdc.readyState === 'open')); i++) {
      await exchange();
      await new Promise((r) => setTimeout(r, 100));
    }
    await pa.evaluate(() => bopen);
    await pb.evaluate(() => bopen);
    const n = Math.ceil(size / 65536);
    const received = pb.evaluate((n) => new Promise((res) => {
      let k = 0, t0 = 0;
      bdc.onmessage = () => { if (!t0) t0 = performance.now(); if (++k === n) res(performance.now() - t0); };
    }), n);
    await pa.evaluate(async (n) => {
      const buf = crypto.getRandomValues(new Uint8Array(65536));
      bdc.bufferedAmountLowThreshold = 2 << 20;
      for (let i = 0; i < n; i++) {
        while (bdc.bufferedAmount + buf.length > 8 << 20) await new Promise((r) => { bdc.onbufferedamountlow = r; });
        bdc.send(buf);
      }
    }, n);
    return mbps(n * 65536, await received);
  } finally {
    await pa.close();
    await pb.close();
  }
}
