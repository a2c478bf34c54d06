// The swarm's acceptance test with browser pages among the receivers: the
// browser variant of cli_swarm_netns_test.go (read its comment for the
// topology and for why the uplink is 20 Mbit/s by default).
//
//	root:  lo        10.B.0.1/32   the server (TURN on, for the pages' STUN);
//	                               the receivers (CLI and Chromium) live here
//	       crhN-s    10.B.1.1/24   veth ── crnN-s 10.B.1.2/24 in netns crN-s
//	crN-s: the CLI sender; default route via 10.B.1.1; the egress of crnN-s
//	       shaped by tc tbf (SWARM_PAGES_MBIT, default 20 Mbit/s)
//
// Phase 1: the sender to one `cloakroom recv` (the baseline wall time).
// Phase 2, a new room: 5 `cloakroom recv` and 3 Chromium pages (three
// browser contexts, ?transport=p2p), all verified in the room before
// `send` starts. Asserted: every SHA-256 matches (the pages' OPFS copies
// read back and hashed in slices), the bytes leaving the sender's veth (the
// kernel's tx_bytes) ≤ 1.3 × the file, the wall time until the sender
// exited and all 8 had the file ≤ 1.5 × phase 1's, every page's card says
// other members helped, the sender delivered only over direct paths.
//
// SWARM_PAGES_MIB sets the file size (default 64), SWARM_PAGES_MBIT the
// uplink (default 20), SWARM_PAGES_N how many of the 8 receivers are pages
// (default 3; 0 is the all-CLI control), SWARM_PAGES_LOGS a directory for
// phase 2's CLI logs. It also logs, for diagnosis, what each page received
// from the sender and from the others (getStats) and phase 2's CPU-seconds
// (ours per program, and the whole machine's busy time): on a shared 2-core
// machine three Chromium pages make phase 2 CPU-bound (BENCHMARKS.md,
// "Swarm: one shaped sender, eight receivers"). It needs root and `ip
// netns`, and fails (never skips) without them. The pages are served over plain HTTP on 10.B.0.1, which Chromium
// is told to treat as a secure origin (WebCrypto, OPFS), as if over TLS.
import { spawn, execFileSync } from 'node:child_process';
import { join, basename } from 'node:path';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { main, buildBinary, launch, tempDir, run, assert, onCleanup, stopProc, cleanup } from './lib.mjs';
import { MIB, T, writeRandomFile, hashFile, waitOnline, finishedCard, checkReceived, tail, recordPeerConnections } from './p2plib.mjs';
import { sh, ip, shapedNamespace, freePortPair } from './netns.mjs';

const MAX_BYTES = 1.3; // sender tx bytes / file size, 8 receivers
const MAX_TIME = 1.5;  // wall time 8 receivers / wall time 1 receiver

function positive(name, dflt) {
  const s = process.env[name];
  if (!s) return dflt;
  const n = Number(s);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name}=${JSON.stringify(s)}: want a positive whole number`);
  return n;
}

/** Whether UDP datagrams sent from namespace from ('' = root) reach a socket on addr in namespace to.
 * Both ends are small node programs (run under `ip netns exec` outside the root namespace). */
async function udpReaches(from, to, addr) {
  const inNs = (ns, code, args) => ns ? ['ip', ['netns', 'exec', ns, process.execPath, '-e', code, ...args]] : [process.execPath, ['-e', code, ...args]];
  const listen = `const s=require('dgram').createSocket('udp4');s.on('message',()=>{console.log('got');process.exit(0)});` +
    `s.bind(0,process.argv[1],()=>console.log('port '+s.address().port));setTimeout(()=>process.exit(3),3000)`;
  const [lp, la] = inNs(to, listen, [addr]);
  const l = spawn(lp, la, { stdio: ['ignore', 'pipe', 'pipe'] });
  onCleanup(() => stopProc(l));
  let out = '';
  l.stdout.on('data', (d) => { out += d; });
  const closed = new Promise((resolve) => l.on('close', (code) => resolve(code)));
  for (let i = 0; i < 50 && !/port \d+/.test(out) && l.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
  const m = /port (\d+)/.exec(out);
  if (!m) throw new Error(`probe listener on ${addr} in ${JSON.stringify(to)} did not start: ${out}`);
  const send = `const s=require('dgram').createSocket('udp4');let n=0;const f=()=>s.send('cloakroom probe',+process.argv[2],process.argv[1],()=>{if(++n<3)setTimeout(f,100);else s.close()});f()`;
  const [sp, sa] = inNs(from, send, [addr, m[1]]);
  try { execFileSync(sp, sa, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 }); } catch (e) { console.error(`probe sender in ${JSON.stringify(from)}: ${e.stderr || e.message}`); }
  return (await closed) === 0;
}

/** Spawns `cloakroom args…` (in namespace ns unless ''); collects its output; resolves done on exit. */
function startCLI(bin, ns, args) {
  const [prog, a] = ns ? ['ip', ['netns', 'exec', ns, bin, ...args]] : [bin, args];
  const proc = spawn(prog, a, { stdio: ['ignore', 'pipe', 'pipe'] });
  onCleanup(() => stopProc(proc));
  const p = { proc, stdout: '', stderr: '', exitedAt: null };
  proc.stdout.on('data', (d) => { p.stdout += d; });
  proc.stderr.on('data', (d) => { p.stderr += d; });
  p.done = new Promise((resolve) => proc.on('close', (code, sig) => { p.exitedAt = performance.now(); resolve(code ?? sig); }));
  p.waitFor = async (re, ms, what) => {
    const t0 = Date.now();
    while (!re.test(p.stdout + p.stderr)) {
      if (p.exitedAt !== null) throw new Error(`${what} exited (${proc.exitCode ?? proc.signalCode}) before ${re}: ${tail(p.stderr)}`);
      if (Date.now() - t0 > ms) throw new Error(`${what}: no ${re} in ${ms} ms: ${tail(p.stderr)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return p;
}

/** Resolves p.done or rejects after ms. */
async function exited(p, ms, what) {
  let timer;
  const code = await Promise.race([p.done, new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} still running after ${ms} ms: ${tail(p.stderr)}`)), ms); })]);
  clearTimeout(timer);
  return code;
}

/** CPU accounting for the log: every second, the user+system time of each
 * process descending from this one (the CLIs, Chromium's processes), kept
 * after they exit, and the machine's busy time from /proc/stat. */
function cpuSampler() {
  const hz = 100; // USER_HZ on Linux
  const last = new Map(); // pid -> {comm, ticks}
  const stat = (pid) => {
    const t = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const r = t.slice(t.lastIndexOf(')') + 2).split(' ');
    return { comm: t.slice(t.indexOf('(') + 1, t.lastIndexOf(')')), ppid: Number(r[1]), ticks: Number(r[11]) + Number(r[12]) };
  };
  const machine = () => {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    return { busy: f.reduce((a, b) => a + b, 0) - f[3] - (f[4] || 0), all: f.reduce((a, b) => a + b, 0) };
  };
  const sample = () => {
    const procs = new Map();
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try { procs.set(Number(d), stat(d)); } catch { /* gone */ }
    }
    for (const [pid, p] of procs) {
      let q = p, n = 0;
      while (q && q.ppid !== process.pid && q.ppid > 1 && n++ < 50) q = procs.get(q.ppid);
      if (q && q.ppid === process.pid) last.set(pid, p);
    }
  };
  let base = null, m0 = null;
  const timer = setInterval(sample, 1000);
  onCleanup(() => clearInterval(timer));
  return {
    start() { sample(); base = new Map([...last].map(([pid, p]) => [pid, p.ticks])); m0 = machine(); },
    stop() {
      sample();
      const m1 = machine();
      const by = {};
      for (const [pid, p] of last) {
        const k = /chrom/i.test(p.comm) ? 'chromium' : p.comm;
        by[k] = (by[k] || 0) + (p.ticks - (base.get(pid) || 0)) / hz;
      }
      const cores = (m1.all - m0.all) / hz; // core-seconds of wall time
      return { by, busy: (m1.busy - m0.busy) / hz, cores };
    },
  };
}

// Namespaces and veths go on SIGINT/SIGTERM too (main's cleanup covers a
// failure and its own timeout).
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { console.error(`swarm_netns: ${sig}, cleaning up`); cleanup().finally(() => process.exit(1)); });
process.env.WEBTEST_TIMEOUT_MS ??= '1200000';

await main('swarm_netns', async () => {
  const size = positive('SWARM_PAGES_MIB', 64) * MIB, mbit = positive('SWARM_PAGES_MBIT', 20);
  // SWARM_PAGES_N: how many of the 8 receivers are pages (default 3; 0 is the all-CLI control).
  const PAGES = process.env.SWARM_PAGES_N === '0' ? 0 : positive('SWARM_PAGES_N', 3);
  assert(PAGES <= 8, 'SWARM_PAGES_N: at most 8');
  const CLI_RECEIVERS = 8 - PAGES;
  assert(typeof process.getuid === 'function' && process.getuid() === 0, `this test needs root (to create network namespaces and shape a veth with tc); uid ${process.getuid?.()}`);
  try { ip('netns', 'list'); } catch (e) { throw new Error('`ip netns` is unavailable: ' + e.message); }
  const bin = buildBinary();

  // Topology.
  const { ns, dev, server, gw, addr, qdisc, txBytes } = shapedNamespace('s', mbit);
  console.log(`swarm_netns: sender ${dev} ${addr} in ${ns}, routes:\n${ip('-n', ns, '-4', 'route', 'show')}\negress:\n${qdisc()}`);
  for (const [from, to, a] of [[ns, '', server], [ns, '', gw], ['', ns, addr]]) {
    assert(await udpReaches(from, to, a), `topology broken: UDP from ${JSON.stringify(from)} does not reach ${a} in ${JSON.stringify(to)}`);
  }

  // The server on 10.B.0.1, with TURN (the pages take their STUN server from
  // it; --transport p2p keeps every file byte on direct paths).
  const turnPort = await freePortPair(server);
  const srv = startCLI(bin, '', ['serve', '--addr', server + ':0', '--public-ip', server, '--turn-port', turnPort, '--relay-max-bytes', '16MiB', '--log-level', 'warn']);
  await srv.waitFor(/serving on http:\/\/\S+/, 20000, 'serve');
  const url = /serving on (http:\/\/[0-9.:]+)/.exec(srv.stdout + srv.stderr)[1];
  const newRoom = () => {
    const lines = sh(bin, ['new', '--server', url, '--no-qr']).split('\n');
    assert(lines.length === 2 && lines[0].startsWith(url + '/#'), `cloakroom new printed ${JSON.stringify(lines)}`);
    return lines[0];
  };

  const dir = tempDir();
  const src = join(dir, 'swarm.bin');
  const want = writeRandomFile(src, size);
  const name = basename(src);
  const wire = size * 8 / (mbit * 1e6) * 1000; // ms for the file at line rate
  const deliveredRe = /delivered to [0-9a-f]{8} via (\S+)/g;

  /** Starts n `cloakroom recv` in link's room and waits until each is in it. */
  const receivers = async (link, n) => {
    const rs = [];
    for (let i = 0; i < n; i++) {
      const out = join(dir, `recv-${link.slice(-6).replace(/[^A-Za-z0-9]/g, '_')}-${i}`);
      mkdirSync(out);
      rs.push({ out, p: startCLI(bin, '', ['recv', '--transport', 'p2p', '--new-only', '-o', out, '--count', '1', link]) });
    }
    for (const [i, r] of rs.entries()) await r.p.waitFor(/in the room/, 30000, `recv ${i}`);
    return rs;
  };
  const checkCLI = (phase, rs) => {
    for (const [i, r] of rs.entries()) {
      const got = join(r.out, name);
      assert(r.p.stdout.split('\n').includes(got), `${phase}: recv ${i} did not print ${got} on stdout: ${tail(r.p.stdout)}`);
      assert(hashFile(got) === want.sha256, `${phase}: recv ${i}: SHA-256 differs`);
    }
  };
  const checkDirect = (phase, snd) => {
    const paths = {};
    for (const m of snd.stderr.matchAll(deliveredRe)) paths[m[1]] = (paths[m[1]] || 0) + 1;
    assert(Object.keys(paths).every((p) => p === 'direct'), `${phase}: the sender delivered via ${JSON.stringify(paths)}; --transport p2p must be direct`);
    return paths;
  };

  // Phase 1: one CLI receiver.
  let one, oneSent;
  {
    const link = newRoom();
    const [r] = await receivers(link, 1);
    const tx0 = txBytes();
    const t0 = performance.now();
    const snd = startCLI(bin, ns, ['send', '--transport', 'p2p', '--log-level', 'info', link, src]);
    const limit = 60000 + 4 * wire;
    const [sc, rc] = await Promise.all([exited(snd, limit, 'send'), exited(r.p, limit, 'recv')]);
    one = (Math.max(snd.exitedAt, r.p.exitedAt) - t0) / 1000;
    oneSent = txBytes() - tx0;
    assert(sc === 0, `phase 1: send exit ${sc}: ${tail(snd.stderr)}`);
    assert(rc === 0, `phase 1: recv exit ${rc}: ${tail(r.p.stderr)}`);
    checkCLI('phase 1', [r]);
    const paths = checkDirect('phase 1', snd);
    console.log(`swarm_netns: 1 receiver: ${one.toFixed(1)} s, sender tx ${(oneSent / MIB).toFixed(1)} MiB (${(oneSent / size).toFixed(3)} × file), deliveries ${JSON.stringify(paths)}; qdisc:\n${qdisc()}`);
  }

  // Phase 2: 5 CLI receivers and 3 pages, a new room.
  const link = newRoom();
  const frag = link.slice(link.indexOf('#'));
  const pages = [];
  const ctxs = [];
  for (let i = 0; i < PAGES; i++) {
    // Plain HTTP on 10.B.0.1 is no secure context unless Chromium is told so.
    const ctx = await launch({ name: `page${i}`, args: [`--unsafely-treat-insecure-origin-as-secure=${url}`] });
    ctxs.push(ctx);
    // For the log only: what each of the page's peer connections received, by
    // remote address (the sender's is its own), sampled every second
    // (connections to the sender close when it exits).
    await recordPeerConnections(ctx);
    await ctx.addInitScript(() => {
      window.__rx = [];
      setInterval(async () => {
        for (const [k, pc] of window.__pcs.entries()) {
          if (pc.connectionState === 'closed') continue;
          try {
            const st = await pc.getStats();
            for (const t of st.values()) {
              if (t.type !== 'transport' || !t.selectedCandidatePairId) continue;
              const pair = st.get(t.selectedCandidatePairId);
              const remote = pair && st.get(pair.remoteCandidateId);
              window.__rx[k] = { remote: remote?.address ?? remote?.ip ?? '?', bytes: t.bytesReceived };
            }
          } catch { /* closing */ }
        }
      }, 1000);
    });
    const page = ctx.pages()[0] ?? await ctx.newPage();
    await page.goto(url + '/?transport=p2p' + frag);
    await page.waitForSelector('#conn-status[data-state=connected]', T);
    pages.push(page);
  }
  const rs = await receivers(link, CLI_RECEIVERS);
  for (const p of pages) await waitOnline(p, CLI_RECEIVERS + PAGES - 1);
  for (const p of pages) assert(await p.evaluate(() => window.isSecureContext && !!crypto.subtle), 'a page has no secure context');
  const cpu = cpuSampler();
  cpu.start();
  const tx0 = txBytes();
  const t0 = performance.now();
  const snd = startCLI(bin, ns, ['send', '--transport', 'p2p', '--log-level', 'info', link, src]);
  const limit = 60000 + 4 * wire + 8 * 2 * one * 1000;
  const sel = `#feed li.file[data-direction=recv]:has(.file-name:text-is("${name}"))`;
  const pageDone = pages.map((p) => p.waitForSelector(`${sel}[data-state=done], ${sel}[data-state=failed]`, { timeout: limit }).then(() => performance.now()));
  const cliDone = [snd, ...rs.map((r) => r.p)].map((p, i) => exited(p, limit, i ? `recv ${i - 1}` : 'send').then((code) => ({ code, at: p.exitedAt })));
  const [cli, pageAt] = await Promise.all([Promise.all(cliDone), Promise.all(pageDone)]);
  const many = (Math.max(...cli.map((c) => c.at), ...pageAt) - t0) / 1000;
  const sent = txBytes() - tx0;
  const used = cpu.stop();
  console.log(`swarm_netns: phase 2 CPU-seconds: ${Object.entries(used.by).filter(([, v]) => v >= 0.05).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}; the machine was busy ${used.busy.toFixed(1)} of ${used.cores.toFixed(1)} core-seconds (load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})`);
  if (process.env.SWARM_PAGES_LOGS) { // a directory: every CLI's stderr, for a failure's post-mortem
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(process.env.SWARM_PAGES_LOGS, 'send.log'), snd.stderr);
    for (const [i, r] of rs.entries()) writeFileSync(join(process.env.SWARM_PAGES_LOGS, `recv${i}.log`), r.p.stderr);
  }
  for (const [i, c] of cli.entries()) assert(c.code === 0, `phase 2: ${i ? `recv ${i - 1}` : 'send'} exit ${c.code}: ${tail((i ? rs[i - 1].p : snd).stderr)}`);
  checkCLI('phase 2', rs);
  const paths = checkDirect('phase 2', snd);
  const fromSender = [];
  for (const p of pages) {
    const rx = (await p.evaluate(() => window.__rx)).filter(Boolean);
    const sum = (f) => rx.filter(f).reduce((n, x) => n + x.bytes, 0) / MIB;
    fromSender.push(`${sum((x) => x.remote === addr).toFixed(1)} MiB from the sender, ${sum((x) => x.remote !== addr).toFixed(1)} MiB from ${rx.filter((x) => x.remote !== addr).length} others`);
  }
  console.log(`swarm_netns: the pages' peer connections received (getStats, sampled each second): ${fromSender.join('; ')}`);
  const helped = [];
  for (const [i, p] of pages.entries()) {
    const card = await finishedCard(p, 'recv', name);
    await checkReceived(p, card, want);
    const h = await p.locator(sel).last().evaluate((li) => ({ n: Number(li.dataset.helpers), text: li.querySelector('.helpers').textContent }));
    helped.push(h.n);
    // helpers counts every member that delivered a chunk, the origin included:
    // ≥ 2 means at least one member other than the sender helped.
    assert(h.n >= 2 && new RegExp(`· ${h.n} members helped$`).test(h.text), `page ${i}: card says ${JSON.stringify(h.text)} (data-helpers ${h.n}); want other members than the sender to have helped`);
    console.log(`swarm_netns: page ${i}: ${card.status}; ${h.text}; done after ${((pageAt[i] - t0) / 1000).toFixed(1)} s`);
  }
  for (const c of ctxs) assert(c.errors.length === 0, 'page errors: ' + c.errors.join('; '));
  const ratio = many / one, bytes = sent / size;
  console.log(`swarm_netns: CLI receivers exited after ${cli.slice(1).map((c) => ((c.at - t0) / 1000).toFixed(1)).join(', ')} s, the sender after ${((cli[0].at - t0) / 1000).toFixed(1)} s; deliveries ${JSON.stringify(paths)}; pages' helpers ${JSON.stringify(helped)}; qdisc:\n${qdisc()}`);
  console.log(`swarm (${PAGES} pages): 1 receiver ${one.toFixed(1)} s, 8 receivers ${many.toFixed(1)} s (ratio ${ratio.toFixed(2)}); sender sent ${(sent / MIB).toFixed(1)} MiB = ${bytes.toFixed(2)} × file (${(oneSent / size).toFixed(2)} × with 1 receiver); file ${size / MIB} MiB, uplink ${mbit}mbit`);
  const fails = [];
  if (bytes > MAX_BYTES) fails.push(`the sender's interface sent ${bytes.toFixed(2)} × the file size to 8 receivers, want ≤ ${MAX_BYTES} ×`);
  if (ratio > MAX_TIME) fails.push(`8 receivers took ${ratio.toFixed(2)} × the time of one, want ≤ ${MAX_TIME} ×`);
  assert(fails.length === 0, fails.join('; '));
});
