// One port for HTTPS, WSS and TURN over TLS (`serve --tls auto`, --turn-tls-mux
// on by default), with a real Chromium on the machine's LAN address: the page
// loads over HTTPS from the port, a member joins over WSS on it and is given a
// turns: URL for that same port, and two RTCPeerConnections configured with
// ONLY that URL and iceTransportPolicy 'relay' connect through it and move
// data: the selected pair's local candidate is a relay reached over TLS. Then
// coturn's turnutils_uclient relays over TLS (-S) on the same port with the
// member's credentials.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { networkInterfaces } from 'node:os';
import { existsSync } from 'node:fs';
import { main, buildBinary, tempDir, onCleanup, stopProc, assert, launch, run } from './lib.mjs';

const BYTES = 1 << 20; // moved over the relayed data channel

function lanAddress() {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return null;
}

/** A port free for both TCP and UDP on ip (the TURN server takes both). */
async function freePort(ip) {
  for (let i = 0; i < 20; i++) {
    const port = await new Promise((resolve, reject) => {
      const s = createServer().listen(0, ip, () => { const p = s.address().port; s.close(() => resolve(p)); });
      s.on('error', reject);
    });
    const ok = await new Promise((resolve) => {
      const u = createSocket('udp4');
      u.once('error', () => resolve(false));
      u.bind(port, ip, () => u.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no port free for TCP and UDP');
}

/** Starts serve; resolves when its output has matched every regexp in res. */
function serve(bin, args, res) {
  const proc = spawn(bin, ['serve', '--log-level', 'warn', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  onCleanup(() => stopProc(proc));
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error('server did not start in 20 s:\n' + out)), 20000);
    const check = (d) => {
      out += d;
      const ms = res.map((re) => out.match(re));
      if (ms.every(Boolean)) { clearTimeout(t); resolve(ms); }
    };
    proc.stdout.on('data', check);
    proc.stderr.on('data', check);
    proc.on('exit', (code) => { clearTimeout(t); reject(new Error(`server exited with ${code}:\n${out}`)); });
  });
}

async function scrape(url) {
  const text = await (await fetch(url)).text();
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}

await main('one_port', async () => {
  const ip = lanAddress();
  assert(ip, 'no non-loopback IPv4 address (Chromium gathers no loopback candidates)');
  const bin = buildBinary();
  const [[, origin, port], [, metrics]] = await serve(bin, ['--addr', `${ip}:0`, '--tls', 'auto', '--tls-dir', tempDir(),
    '--turn-port', String(await freePort(ip)), '--metrics-addr', '127.0.0.1:0'],
  [/serving on (https:\/\/[0-9.]+:(\d+))/, /metrics on (http:\/\/\S+\/metrics)/]);

  // The self-signed certificate is accepted for the page and for TURN over
  // TLS alike, as by a user who accepted it once (the switch reaches
  // Chromium's network service, which makes the TURN connections too).
  const ctx = await launch({ name: 'one-port', args: ['--ignore-certificate-errors'] });
  const page = ctx.pages()[0] ?? await ctx.newPage();
  await page.goto(origin + '/');
  assert(await page.title() === 'Cloakroom', `the page over HTTPS on ${origin}`);

  // A member joins over WSS on the page's own port.
  const welcome = await page.evaluate(async () => {
    const { PROTOCOL_VERSION } = await import('/js/protocol.js');
    const b64 = (n) => btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(n))))
      .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    const ws = new WebSocket(`wss://${location.host}/ws`);
    const w = await new Promise((resolve, reject) => {
      setTimeout(() => reject(new Error('join: no welcome in 10 s')), 10000);
      ws.onopen = () => ws.send(JSON.stringify({ t: 'join', v: PROTOCOL_VERSION, room: b64(16), verifier: b64(32),
        member: crypto.randomUUID(), pub: b64(65), mac: b64(32) }));
      ws.onmessage = (e) => resolve(JSON.parse(e.data));
      ws.onerror = () => reject(new Error('WebSocket failed'));
    });
    ws.close();
    return w;
  });
  const want = `turns:${ip}:${port}?transport=tcp`;
  assert(welcome.t === 'welcome' && welcome.ice?.[0]?.urls.includes(want), `the welcome over WSS gives ${want}; got ${JSON.stringify(welcome)}`);
  const ice = welcome.ice[0];

  const r = await relayed(page, [want], ice, BYTES);
  assert(r.gathered.length > 0 && r.gathered.every((c) => / typ relay /.test(c)), `only relay candidates: ${r.gathered.join(' | ')}`);
  assert(r.n >= BYTES, `received ${r.n} of ${BYTES} bytes`);
  assert(r.local?.candidateType === 'relay' && r.local?.relayProtocol === 'tls' && r.local?.url === want,
    `selected local candidate ${JSON.stringify(r.local)}, want a relay over TLS from ${want}`);

  // coturn's client over TLS on the same port, with the member's credentials.
  assert(existsSync('/usr/bin/turnutils_uclient'), 'turnutils_uclient is missing: apt-get install -y coturn');
  const uc = await run('/usr/bin/turnutils_uclient', ['-t', '-S', '-u', ice.username, '-w', ice.credential,
    '-y', '-c', '-n', '20', '-l', '500', '-m', '1', '-z', '1', '-L', ip, '-p', port, ip], { timeoutMs: 30000 }).done;
  const ucRecv = Number([...uc.stdout.matchAll(/tot_recv_msgs=(\d+)/g)].at(-1)?.[1] ?? 0); // the final count
  assert(uc.code === 0 && ucRecv > 0, `turnutils_uclient -S on ${ip}:${port}: exit ${uc.code}\n${uc.stdout}${uc.stderr}`);

  const m = await scrape(metrics);
  const turn = (by) => m[`cloakroom_tls_port_connections_total{to="turn",by="${by}"}`] ?? 0;
  assert(turn('alpn') >= 2 && turn('sniff') >= 2, `TURN connections on the HTTPS port (coturn's by ALPN, Chromium's by first bytes): ${JSON.stringify(m)}`);
  assert(m.cloakroom_turn_relayed_bytes_total >= BYTES, `TURN relayed ${m.cloakroom_turn_relayed_bytes_total} bytes`);
  assert(ctx.errors.length === 0, `page errors: ${ctx.errors.join('; ')}`);
  console.log(`one_port: ${origin} served the page, WSS, coturn's and Chromium's TURN over TLS (${want}; TURN connections by ALPN ${turn('alpn')}, by first bytes ${turn('sniff')}); ` +
    `${rate(r)}, local candidate ${JSON.stringify(r.local)}`);

  // ONE_PORT_BENCH_MIB=N: N MiB over TURN-TLS on the HTTPS port, then over
  // TURN-UDP, in this browser, for BENCHMARKS.md.
  const mib = Number(process.env.ONE_PORT_BENCH_MIB || 0);
  if (mib > 0) {
    const udp = ice.urls.find((u) => u.endsWith('transport=udp'));
    const tls = await relayed(page, [want], ice, mib << 20);
    const plain = await relayed(page, [udp], ice, mib << 20);
    console.log(`one_port bench: TURN-TLS on the HTTPS port ${rate(tls)}; TURN-UDP ${rate(plain)}; ratio TLS/UDP ${(plain.ms / tls.ms).toFixed(2)}`);
  }
});

function rate(r) {
  return `${(r.n / 1048576).toFixed(0)} MiB in ${r.ms.toFixed(0)} ms (${(r.n / 1e3 / r.ms).toFixed(1)} MB/s)`;
}

/** Two RTCPeerConnections in page that may use only urls (relay policy)
 * move bytes over a data channel; returns what they gathered, the bytes
 * received, the time and the selected pair's local candidate. */
function relayed(page, urls, ice, bytes) {
  return page.evaluate(async ({ urls, ice, bytes }) => {
    const timeout = (ms, what) => new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: not in ${ms} ms`)), ms));
    const cfg = { iceServers: [{ urls, username: ice.username, credential: ice.credential }], iceTransportPolicy: 'relay' };
    const a = new RTCPeerConnection(cfg), b = new RTCPeerConnection(cfg);
    const gathered = [];
    a.onicecandidate = (e) => { if (e.candidate) { gathered.push(e.candidate.candidate); b.addIceCandidate(e.candidate); } };
    b.onicecandidate = (e) => { if (e.candidate) a.addIceCandidate(e.candidate); };
    const dc = a.createDataChannel('x');
    const received = new Promise((resolve) => {
      b.ondatachannel = (e) => {
        let n = 0;
        e.channel.onmessage = (m) => { n += m.data.byteLength; if (n >= bytes) resolve(n); };
      };
    });
    await a.setLocalDescription();
    await b.setRemoteDescription(a.localDescription);
    await b.setLocalDescription();
    await a.setRemoteDescription(b.localDescription);
    await Promise.race([timeout(20000, 'data channel open'), new Promise((resolve) => { dc.onopen = resolve; })]);
    const t0 = performance.now();
    const chunk = new Uint8Array(16 << 10);
    dc.bufferedAmountLowThreshold = 1 << 20;
    for (let sent = 0; sent < bytes; sent += chunk.length) {
      if (dc.bufferedAmount > 4 << 20) await new Promise((resolve) => { dc.onbufferedamountlow = resolve; });
      dc.send(chunk);
    }
    const n = await Promise.race([timeout(Math.max(20000, bytes / 50), 'data'), received]);
    const ms = performance.now() - t0;
    const stats = [...(await a.getStats()).values()];
    const transport = stats.find((s) => s.type === 'transport' && s.selectedCandidatePairId);
    const pair = stats.find((s) => s.id === transport?.selectedCandidatePairId);
    const local = stats.find((s) => s.id === pair?.localCandidateId);
    a.close(); b.close();
    return { gathered, n, ms, local: local && { candidateType: local.candidateType, relayProtocol: local.relayProtocol, url: local.url } };
  }, { urls, ice, bytes });
}
