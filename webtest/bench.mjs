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
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { main, buildBinary, launch, tempDir, run, assert } from './lib.mjs';
import { MIB, startServerWithTURN, writeRandomFile, hashFile, createAndJoin, waitOnline, finishedCard, checkReceived } from './p2plib.mjs';

const SIZE = Number(process.env.BENCH_MIB || 256) * MIB;
const PAR = Number(process.env.BENCH_PARALLEL || 2); // channels / peer connections of the second baseline (1: none)
const CLI = process.env.BENCH_CLI !== '0';          // also browser -> Go CLI
const PROFILE = !!process.env.BENCH_PROFILE;       // CDP profiles of both pages' main threads during ours
const OURS = process.env.BENCH_OURS !== '0';        // the client itself (0: the bare baselines only)
const mbps = (bytes, ms) => bytes / 1e6 / (ms / 1000);

/** CPU seconds (user + system) used so far by the browsers this process
 * started (its descendants): the cost per MB of a phase is the difference
 * over the MB moved, a figure other load on the machine barely moves. */
function browserCPU() {
  const tick = 100; // USER_HZ on Linux
  const procs = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      const rest = st.slice(st.lastIndexOf(')') + 2).split(' ');
      procs.set(Number(d), { ppid: Number(rest[1]), cpu: (Number(rest[11]) + Number(rest[12])) / tick });
    } catch { /* gone */ }
  }
  let sum = 0;
  for (const [pid, p] of procs) {
    for (let q = p.ppid, hops = 0; q && hops < 8; q = procs.get(q)?.ppid, hops++) {
      if (q === process.pid) { if (pid !== process.pid) sum += p.cpu; break; }
    }
  }
  return sum;
}
/** Per browser process type (renderer, network, gpu…): CPU seconds so far,
 * or with before, the difference as text. */
function cpuDetail(before) {
  const m = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (!cmd.includes('chrom')) continue;
      const type = (/--type=([a-z-]+)/.exec(cmd)?.[1] || 'browser') + (/--utility-sub-type=network/.test(cmd) ? ':network' : '');
      for (const t of readdirSync(`/proc/${d}/task`)) {
        const st = readFileSync(`/proc/${d}/task/${t}/stat`, 'utf8');
        const name = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
        const rest = st.slice(st.lastIndexOf(')') + 2).split(' ');
        const k = `${d} ${type} ${name}`;
        m.set(k, (m.get(k) || 0) + (Number(rest[11]) + Number(rest[12])) / 100);
      }
    } catch { /* gone */ }
  }
  if (!before) return m;
  return [...m].map(([k, v]) => [k, v - (before.get(k) || 0)]).filter(([, v]) => v > 0.05).sort((a, b) => b[1] - a[1]).map(([k, v]) => `  ${v.toFixed(2)} s ${k}`).join('\n');
}
/** The functions with the most self time in a CDP profile, as text. */
function topFunctions(profile, n = 25) {
  const self = new Map();
  const dt = new Map();
  profile.samples.forEach((id, i) => dt.set(id, (dt.get(id) || 0) + (profile.timeDeltas[i] || 0)));
  let total = 0;
  for (const node of profile.nodes) {
    const cf = node.callFrame;
    const k = `${cf.functionName || '(anon)'} ${cf.url.split('/').pop()}:${cf.lineNumber + 1}`;
    const t = dt.get(node.id) || 0;
    total += t;
    self.set(k, (self.get(k) || 0) + t);
  }
  return [...self].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, t]) => `  ${(t / 1000).toFixed(0).padStart(6)} ms ${((100 * t) / total).toFixed(1).padStart(5)}% ${k}`).join('\n');
}
/** ms of browser CPU per MB moved between two browserCPU() readings. */
const cpuPerMB = (c0, c1, bytes) => ((c1 - c0) * 1000) / (bytes / 1e6);

// A benchmark, not a test: six transfers of BENCH_MIB at what this
// machine's Chromium does (5 MB/s on a slow day) outlast the tests' 5 min.
process.env.WEBTEST_TIMEOUT_MS ??= String(30 * 60 * 1000);

await main('bench', async () => {
  const bin = buildBinary();
  const srv = await startServerWithTURN(bin);
  const dir = tempDir();
  const ctxA = await launch({ name: 'A' });
  const ctxB = await launch({ name: 'B' });
  for (const c of [ctxA, ctxB]) await timeDataChannels(c);
  const A = ctxA.pages()[0] ?? await ctxA.newPage();
  const B = ctxB.pages()[0] ?? await ctxB.newPage();

  const b1 = await bareDataChannel(ctxA, ctxB, srv.url, SIZE);
  const base1 = b1.rate;
  console.log(`bench: baseline (bare data channel) ${base1.toFixed(1)} MB/s, browsers' CPU ${b1.cpu.toFixed(0)} ms/MB`);
  // The second baseline: the same bytes over N channels of one peer
  // connection, and over N peer connections of one channel each.
  const par = {};
  if (PAR > 1) {
    const c = await bareDataChannel(ctxA, ctxB, srv.url, SIZE, 1, PAR);
    par.chans = c.rate;
    console.log(`bench: bare, ${PAR} channels on one peer connection ${par.chans.toFixed(1)} MB/s (${(par.chans / base1).toFixed(2)} of one channel), CPU ${c.cpu.toFixed(0)} ms/MB`);
    const p = await bareDataChannel(ctxA, ctxB, srv.url, SIZE, PAR, 1);
    par.pcs = p.rate;
    console.log(`bench: bare, ${PAR} peer connections ${par.pcs.toFixed(1)} MB/s (${(par.pcs / base1).toFixed(2)} of one channel), CPU ${p.cpu.toFixed(0)} ms/MB`);
  }

  const f = join(dir, 'bench.bin');
  const want = OURS ? writeRandomFile(f, SIZE) : null;
  let dcPhase = NaN, whole = NaN, oursCPU = NaN;
  if (OURS) {
    // Browser -> browser.
    await createAndJoin(srv.url, '?transport=p2p', A, [B]);
    await waitOnline(A, 1);
    await A.evaluate(() => { window.__dcStats.length = 0; });
    await B.evaluate(() => { window.__dcStats.length = 0; });
    // The browsers' CPU from the first MiB received to the end.
    let cpu0 = 0, cpu0d = null, polling = true;
    const poll = (async () => {
      while (polling && !cpu0) {
        if (await B.evaluate(() => window.__dcStats.some((s) => s.recvBytes > 1 << 20))) { cpu0 = browserCPU(); cpu0d = process.env.BENCH_CPU_DETAIL ? cpuDetail() : null; }
        else await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const profs = PROFILE ? await Promise.all([[ctxA, A], [ctxB, B]].map(async ([c, p]) => {
      const s = await c.newCDPSession(p);
      await s.send('Profiler.enable');
      await s.send('Profiler.setSamplingInterval', { interval: 500 });
      await s.send('Profiler.start');
      return s;
    })) : [];
    await A.setInputFiles('#file-input', f);
    const rc = await finishedCard(B, 'recv', 'bench.bin');
    const cpu1 = browserCPU();
    for (const [k, s] of profs.entries()) {
      const { profile } = await s.send('Profiler.stop');
      console.log(`bench: ${k ? 'receiver' : 'sender'}'s main thread, self time by function:\n${topFunctions(profile)}`);
    }
    polling = false;
    await poll;
    oursCPU = cpu0 ? cpuPerMB(cpu0, cpu1, SIZE - (1 << 20)) : NaN;
    if (cpu0d) console.log(cpuDetail(cpu0d, cpuDetail()));
    assert(rc.path === 'direct', `path ${rc.path}`);
    await checkReceived(B, rc, want);
    // Every channel that carried data (one, or several if the client spreads a transfer).
    const st = await B.evaluate(() => {
      const ss = window.__dcStats.filter((s) => s.recvBytes > 1 << 20);
      return { recvBytes: ss.reduce((n, s) => n + s.recvBytes, 0), firstRecv: Math.min(...ss.map((s) => s.firstRecv)), lastRecv: Math.max(...ss.map((s) => s.lastRecv)) };
    });
    dcPhase = mbps(st.recvBytes, st.lastRecv - st.firstRecv);
    const queued = await A.evaluate(() => window.__dcStats.filter((s) => s.sends > 100).map((s) => s.bufSum / s.sends / 1048576));
    console.log(`bench: ours: the sender's channel held ${queued.map((x) => x.toFixed(2)).join(', ')} MiB on average when it sent a message (bare: 2–8)`);
    const secs = Number(/· ([0-9.]+) s ·/.exec(rc.status)?.[1]);
    whole = mbps(SIZE, secs * 1000);
    console.log(`bench: browser -> browser ${dcPhase.toFixed(1)} MB/s on the data channel, ${whole.toFixed(1)} MB/s manifest to verified file (${rc.status}), browsers' CPU ${oursCPU.toFixed(0)} ms/MB`);
  }

  let toCLI = NaN;
  if (CLI && OURS) {
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
    const sa = await A.evaluate(() => {
      const ss = window.__dcStats.filter((s) => s.sentBytes > 1 << 20);
      return { firstSent: Math.min(...ss.map((s) => s.firstSent)), lastRecv: Math.max(...ss.map((s) => s.lastRecv)) };
    });
    toCLI = mbps(SIZE, sa.lastRecv - sa.firstSent);
    console.log(`bench: browser -> Go CLI ${toCLI.toFixed(1)} MB/s, first chunk sent to the CLI's verdict (${sc.status})`);
  }

  const b2 = await bareDataChannel(ctxA, ctxB, srv.url, SIZE);
  const base2 = b2.rate;
  console.log(`bench: baseline again ${base2.toFixed(1)} MB/s, CPU ${b2.cpu.toFixed(0)} ms/MB`);
  const base = (base1 + base2) / 2;
  const best = Math.max(base, par.chans || 0, par.pcs || 0);
  const fmt = (x) => (Number.isFinite(x) ? x.toFixed(1) + ' MB/s' : '–');
  const r = (x, y) => (Number.isFinite(x) && y ? (x / y).toFixed(2) : '–');
  console.log(`\nbench: ${SIZE / MIB} MiB, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  console.log(`bench: bare single channel ${fmt(base)} (${base1.toFixed(1)} before, ${base2.toFixed(1)} after), browsers' CPU ${((b1.cpu + b2.cpu) / 2).toFixed(0)} ms/MB`);
  if (PAR > 1) console.log(`bench: bare ×${PAR} channels ${fmt(par.chans)} = ${r(par.chans, base)} of single; ×${PAR} peer connections ${fmt(par.pcs)} = ${r(par.pcs, base)} of single`);
  console.log(`bench: ours browser -> browser ${fmt(dcPhase)} on the data channel = ${r(dcPhase, base)} of the bare single channel${PAR > 1 ? `, ${r(dcPhase, best)} of the best bare` : ''}; whole reception ${fmt(whole)} = ${r(whole, base)}; CPU ${oursCPU.toFixed(0)} ms/MB = ${r(oursCPU, (b1.cpu + b2.cpu) / 2)} of the bare channel's`);
  if (CLI && OURS) console.log(`bench: browser -> Go CLI ${fmt(toCLI)} = ${r(toCLI, base)} of the bare single channel`);
  console.log(`\n| size | load | bare 1 channel (before / after) | bare ×${PAR} channels | bare ×${PAR} peer conns | ours: data channel | ours: manifest to verified | ours / bare 1 | ours / best bare | browser -> Go CLI | CLI / bare 1 |`);
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  console.log(`| ${SIZE / MIB} MiB | ${loadavg()[0].toFixed(1)} | ${base1.toFixed(1)} / ${base2.toFixed(1)} | ${fmt(par.chans)} | ${fmt(par.pcs)} | ${fmt(dcPhase)} | ${fmt(whole)} | ${r(dcPhase, base)} | ${r(dcPhase, best)} | ${fmt(toCLI)} | ${r(toCLI, base)} |`);
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
      // bufSum / sends: the mean bytes queued on the channel when a message is sent (a starved channel has little).
      s.bufSum = 0; s.sends = 0;
      dc.send = (d) => { if (!s.firstSent) s.firstSent = performance.now(); s.sentBytes += d.byteLength ?? d.length; s.bufSum += dc.bufferedAmount; s.sends++; return send(d); };
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

/** Bare data channels between a new page in each browser: pcs peer
 * connections with chans channels each (ordered, in-band open), size bytes
 * of 64 KiB messages dealt round-robin over every channel, each channel
 * with the client's flow control (pause above 8 MiB buffered, resume on
 * bufferedamountlow at 2 MiB); returns MB/s from the receiver's first
 * message to its last on any channel. */
async function bareDataChannel(ctxA, ctxB, url, size, pcs = 1, chans = 1) {
  const pa = await ctxA.newPage();
  const pb = await ctxB.newPage();
  try {
    for (const p of [pa, pb]) await p.goto(url + '/healthz');
    const setup = ([offerer, pcs, chans]) => {
      window.bare = [];
      for (let k = 0; k < pcs; k++) {
        const pc = new RTCPeerConnection({ iceServers: [] });
        const b = { pc, cands: [], dcs: [] };
        window.bare.push(b);
        pc.onicecandidate = (e) => { if (e.candidate) b.cands.push(e.candidate.toJSON()); };
        b.open = new Promise((res) => {
          const on = (dc) => {
            dc.binaryType = 'arraybuffer';
            b.dcs.push(dc);
            const opened = () => { if (b.dcs.length === chans && b.dcs.every((d) => d.readyState === 'open')) res(); };
            if (dc.readyState === 'open') opened(); else dc.addEventListener('open', opened);
          };
          if (offerer) for (let c = 0; c < chans; c++) on(pc.createDataChannel('bare' + c, { ordered: true }));
          else pc.ondatachannel = (e) => on(e.channel);
        });
      }
    };
    await pa.evaluate(setup, [true, pcs, chans]);
    await pb.evaluate(setup, [false, pcs, chans]);
    for (let k = 0; k < pcs; k++) {
      const offer = await pa.evaluate(async (k) => { const pc = bare[k].pc; const o = await pc.createOffer(); await pc.setLocalDescription(o); return { type: o.type, sdp: o.sdp }; }, k);
      const answer = await pb.evaluate(async ([k, o]) => { const pc = bare[k].pc; await pc.setRemoteDescription(o); const a = await pc.createAnswer(); await pc.setLocalDescription(a); return { type: a.type, sdp: a.sdp }; }, [k, offer]);
      await pa.evaluate(([k, a]) => bare[k].pc.setRemoteDescription(a), [k, answer]);
    }
    const exchange = async () => {
      const ca = await pa.evaluate(() => bare.map((b) => b.cands.splice(0)));
      await pb.evaluate((ca) => { ca.forEach((cs, k) => cs.forEach((c) => bare[k].pc.addIceCandidate(c))); }, ca);
      const cb = await pb.evaluate(() => bare.map((b) => b.cands.splice(0)));
      await pa.evaluate((cb) => { cb.forEach((cs, k) => cs.forEach((c) => bare[k].pc.addIceCandidate(c))); }, cb);
    };
    const allOpen = (p) => p.evaluate(() => Promise.race([Promise.all(bare.map((b) => b.open)).then(() => true), new Promise((r) => setTimeout(() => r(false), 100))]));
    for (let i = 0; i < 100 && !(await allOpen(pa) && await allOpen(pb)); i++) await exchange();
    assert(await allOpen(pa) && await allOpen(pb), 'bare channels open');
    const n = Math.ceil(size / 65536);
    const received = pb.evaluate((n) => new Promise((res) => {
      let k = 0, t0 = 0;
      const on = () => { if (!t0) t0 = performance.now(); if (++k === n) res(performance.now() - t0); };
      for (const b of bare) for (const dc of b.dcs) dc.onmessage = on;
    }), n);
    const c0 = browserCPU();
    const c0d = process.env.BENCH_CPU_DETAIL ? cpuDetail() : null;
    await pa.evaluate(async (n) => {
      const buf = crypto.getRandomValues(new Uint8Array(65536));
      const dcs = bare.flatMap((b) => b.dcs);
      // One sender loop per channel, each with its share of the messages.
      await Promise.all(dcs.map(async (dc, c) => {
        dc.bufferedAmountLowThreshold = 2 << 20;
        for (let i = c; i < n; i += dcs.length) {
          while (dc.bufferedAmount + buf.length > 8 << 20) await new Promise((r) => { dc.onbufferedamountlow = r; });
          dc.send(buf);
        }
      }));
    }, n);
    const ms = await received;
    const cpu = cpuPerMB(c0, browserCPU(), n * 65536);
    if (process.env.BENCH_CPU_DETAIL) console.log(cpuDetail(c0d, cpuDetail()));
    return { rate: mbps(n * 65536, ms), cpu };
  } finally {
    await pa.close();
    await pb.close();
  }
}
