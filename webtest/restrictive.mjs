// Page -> page on issue 16's four restrictive networks (the browser side
// of TestCLIRestrictive, cli_restrict_test.go; netns_restrict_test.go draws
// the topology): a Chromium on a member network sends a 64 MiB file and
// chats with a Chromium on an open network; SHA-256 of the copy read back
// from the receiver's OPFS, the path from the file cards (which say TURN
// for any relayed path) and the sender's selected candidate.
//
//	rwN-s: lo 10.B.0.1 (serve --tls auto on :443: HTTPS, WSS and TURN-TLS on
//	          the one port; TURN 3478),
//	          10.B.0.2 (a CONNECT proxy on :3128: a node program here),
//	          10.B.0.3 (a middlebox on :443: an HTTPS reverse proxy to the
//	          server that answers 403 to every WebSocket upgrade)
//	       a veth to each member namespace rwN-X (10.B.i.2, route 10.B.0.0/24)
//	(a) UDP blocked (nftables in rwN-a): any path that works;
//	(b) only TCP to the server's 443: TURN-TLS on 443;
//	(c) only TCP to the proxy, Chromium with --proxy-server: TURN-TLS
//	    through the proxy (to 443), whose tunnels carried the file;
//	(d) only TCP to the middlebox's 443, the page opened there: the HTTP
//	    fallback (#conn-status data-wire=http) and the relay;
//	(o) open: the receiver.
// Chromium runs in a namespace through a wrapper (`ip netns exec NS
// chromium …`, as stream_video.mjs) and trusts the server's self-signed
// certificate (the middlebox shows the same one) by its SPKI hash. It needs
// root, ip and nft; fails (never skips) without them. RESTRICTIVE_MIB sets
// the size (default 64), RESTRICTIVE_NETS the networks (default "a,b,c,d").
// Not in run.mjs's default list: 4 × 64 MiB through pages' TURN takes
// minutes on a 2-core machine (BENCHMARKS.md).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { writeFileSync, chmodSync, readFileSync } from 'node:fs';
import { createHash, X509Certificate as X509 } from 'node:crypto';
import { main, buildBinary, launch, tempDir, assert, onCleanup, stopProc, cleanup, CHROMIUM } from './lib.mjs';
import { MIB, writeRandomFile, createAndJoin, waitOnline, finishedCard, checkReceived, chat, tail, recordPeerConnections } from './p2plib.mjs';
import { sh, ip, cleanupIP, freeOctet, need } from './netns.mjs';

const RULES = {
  a: `table inet restrict {
	chain out { type filter hook output priority 0; policy accept; oif "lo" accept; meta l4proto udp drop; }
	chain in { type filter hook input priority 0; policy accept; iif "lo" accept; meta l4proto udp drop; }
}`,
  b: `table inet restrict {
	chain out { type filter hook output priority 0; policy drop; oif "lo" accept; ip daddr {server} tcp dport 443 accept; }
	chain in { type filter hook input priority 0; policy drop; iif "lo" accept; ct state established,related accept; }
}`,
  d: `table inet restrict {
	chain out { type filter hook output priority 0; policy drop; oif "lo" accept; ip daddr {middlebox} tcp dport 443 accept; }
	chain in { type filter hook input priority 0; policy drop; iif "lo" accept; ct state established,related accept; }
}`,
  c: `table inet restrict {
	chain out { type filter hook output priority 0; policy drop; oif "lo" accept; ip daddr {proxy} tcp dport 3128 accept; }
	chain in { type filter hook input priority 0; policy drop; iif "lo" accept; ct state established,related accept; }
}`,
  o: '',
};

// The CONNECT proxy: only ports 443 and 5349; one JSON line per tunnel
// opened, refused and closed (with its bytes both ways).
const PROXY = `
const net = require('net');
const [addr, port] = process.argv.slice(1);
const say = (o) => console.log(JSON.stringify(o));
net.createServer((c) => {
  let head = Buffer.alloc(0);
  const onData = (d) => {
    head = Buffer.concat([head, d]);
    const end = head.indexOf('\\r\\n\\r\\n');
    if (end < 0) { if (head.length > 8192) c.destroy(); return; }
    c.off('data', onData);
    const m = /^CONNECT ([^ ]+):(\\d+) HTTP\\/1\\.[01]\\r\\n/.exec(head.toString('latin1'));
    if (!m) { c.end('HTTP/1.1 405 Method Not Allowed\\r\\n\\r\\n'); say({ refused: head.toString('latin1').split('\\r\\n')[0] }); return; }
    const target = m[1] + ':' + m[2];
    if (m[2] !== '443' && m[2] !== '5349') { c.end('HTTP/1.1 403 Forbidden\\r\\n\\r\\n'); say({ refused: target }); return; }
    const up = net.connect(+m[2], m[1], () => {
      c.write('HTTP/1.1 200 Connection established\\r\\n\\r\\n');
      say({ open: target });
      const rest = head.subarray(end + 4);
      if (rest.length) up.write(rest);
      let bytes = rest.length;
      c.on('data', (d) => { bytes += d.length; });
      up.on('data', (d) => { bytes += d.length; });
      c.pipe(up); up.pipe(c);
      let said = false;
      const done = () => { if (!said) { said = true; say({ closed: target, bytes }); } c.destroy(); up.destroy(); };
      c.on('close', done); up.on('close', done);
    });
    up.on('error', () => { c.destroy(); });
    c.on('error', () => { up.destroy(); });
  };
  c.on('data', onData);
  c.on('error', () => {});
}).listen(+port, addr, () => say({ listening: addr + ':' + port }));
`;

// The middlebox: HTTPS with the server's certificate, every request passed
// to the server and its answer streamed back, WebSocket upgrades refused.
const MIDDLEBOX = `
const https = require('https'), fs = require('fs');
const [addr, target, cert, key] = process.argv.slice(1);
const say = (o) => console.log(JSON.stringify(o));
const srv = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (req, res) => {
  const up = https.request({ host: target, port: 443, method: req.method, path: req.url, headers: req.headers, rejectUnauthorized: false }, (ur) => {
    res.writeHead(ur.statusCode, ur.headers);
    res.flushHeaders();
    ur.pipe(res);
  });
  up.on('error', () => res.destroy());
  req.pipe(up);
});
srv.on('upgrade', (req, socket) => {
  say({ refused: req.url });
  socket.end('HTTP/1.1 403 Forbidden\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n');
});
srv.listen(443, addr, () => say({ listening: addr + ':443' }));
`;

function nsProc(ns, prog, args) {
  const p = spawn('ip', ['netns', 'exec', ns, prog, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  onCleanup(() => stopProc(p));
  const o = { p, out: '' };
  p.stdout.on('data', (d) => { o.out += d; });
  p.stderr.on('data', (d) => { o.out += d; });
  o.waitFor = async (re, ms, what) => {
    for (const t0 = Date.now(); !re.test(o.out);) {
      if (p.exitCode !== null) throw new Error(`${what} exited (${p.exitCode}): ${tail(o.out)}`);
      if (Date.now() - t0 > ms) throw new Error(`${what}: no ${re} in ${ms} ms: ${tail(o.out)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return re.exec(o.out);
  };
  return o;
}

/** Whether a TCP connection from namespace ns to addr:port opens within a second. */
function tcpReaches(ns, addr, port) {
  try {
    sh('ip', ['netns', 'exec', ns, process.execPath, '-e',
      `const s=require('net').connect(${port},'${addr}',()=>process.exit(0));s.on('error',()=>process.exit(1));setTimeout(()=>process.exit(2),1000)`]);
    return true;
  } catch { return false; }
}

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { console.error(`restrictive: ${sig}, cleaning up`); cleanup().finally(() => process.exit(1)); });
process.env.WEBTEST_TIMEOUT_MS ??= '1500000';

await main('restrictive', async () => {
  assert(typeof process.getuid === 'function' && process.getuid() === 0, `this test needs root (network namespaces, nftables); uid ${process.getuid?.()}`);
  need('ip');
  need('nft');
  const nets = (process.env.RESTRICTIVE_NETS || 'a,b,c,d').split(',');
  const size = Number(process.env.RESTRICTIVE_MIB || 64) * MIB;
  const bin = buildBinary();
  const dir = tempDir();

  // Topology.
  const b = freeOctet(), pid = process.pid;
  const S = `rw${pid}-s`, server = `10.${b}.0.1`, proxy = `10.${b}.0.2`, middlebox = `10.${b}.0.3`;
  ip('netns', 'add', S);
  cleanupIP('netns', 'del', S);
  ip('-n', S, 'link', 'set', 'lo', 'up');
  for (const a of [server, proxy, middlebox]) ip('-n', S, 'addr', 'add', a + '/32', 'dev', 'lo');
  sh('ip', ['netns', 'exec', S, 'sysctl', '-qw', 'net.ipv4.ip_forward=0']);
  const members = {};
  for (const [i, x] of ['a', 'b', 'c', 'd', 'o'].entries()) {
    const ns = `rw${pid}-${x}`, gw = `10.${b}.${i + 1}.1`, addr = `10.${b}.${i + 1}.2`;
    ip('netns', 'add', ns);
    cleanupIP('netns', 'del', ns);
    ip('-n', S, 'link', 'add', `rv${pid}-${x}`, 'type', 'veth', 'peer', 'name', `rm${pid}-${x}`, 'netns', ns);
    ip('-n', S, 'addr', 'add', gw + '/24', 'dev', `rv${pid}-${x}`);
    ip('-n', S, 'link', 'set', `rv${pid}-${x}`, 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('-n', ns, 'addr', 'add', addr + '/24', 'dev', `rm${pid}-${x}`);
    ip('-n', ns, 'link', 'set', `rm${pid}-${x}`, 'up');
    ip('-n', ns, 'route', 'add', `10.${b}.0.0/24`, 'via', gw);
    if (RULES[x]) sh('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: RULES[x].replaceAll('{proxy}', proxy).replaceAll('{server}', server).replaceAll('{middlebox}', middlebox), stdio: ['pipe', 'pipe', 'pipe'] });
    const wrapper = join(dir, `chromium-${x}.sh`);
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${ns} ${CHROMIUM} "$@"\n`);
    chmodSync(wrapper, 0o755);
    members[x] = { ns, addr, wrapper };
  }

  // The server (TLS with a self-signed certificate: Chromium trusts it by
  // its SPKI hash, for the page, WSS and TURN-TLS alike) and the proxy.
  const tlsDir = join(dir, 'tls');
  const srv = nsProc(S, bin, ['serve', '--addr', server + ':443', '--tls', 'auto', '--tls-dir', tlsDir, '--public-ip', server,
    '--turn-port', '3478', '--turn-allow-private', '--relay-max-bytes', '256MiB', '--metrics-addr', '', '--log-level', 'warn']);
  const url = (await srv.waitFor(/serving on (https:\/\/\S+)/, 20000, 'serve'))[1];
  const cert = new X509(readFileSync(join(tlsDir, 'cert.pem')));
  const spki = createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
  const prox = nsProc(S, process.execPath, ['-e', PROXY, proxy, '3128']);
  await prox.waitFor(/listening/, 10000, 'proxy');
  const mb = nsProc(S, process.execPath, ['-e', MIDDLEBOX, middlebox, server, join(tlsDir, 'cert.pem'), join(tlsDir, 'key.pem')]);
  await mb.waitFor(/listening/, 10000, 'middlebox');
  const mbURL = `https://${middlebox}`;

  // Each network is what it says.
  const want = { // TCP to the server's :443, its :3478, the proxy, the middlebox
    a: [true, true, true, true], b: [true, false, false, false], c: [false, false, true, false], d: [false, false, false, true], o: [true, true, true, true],
  };
  for (const x of ['o', ...nets]) {
    const m = members[x];
    const got = [tcpReaches(m.ns, server, 443), tcpReaches(m.ns, server, 3478), tcpReaches(m.ns, proxy, 3128), tcpReaches(m.ns, middlebox, 443)];
    assert(JSON.stringify(got) === JSON.stringify(want[x]), `network (${x}) is not what it says: TCP to :443, :3478, the proxy opens ${JSON.stringify(got)}, want ${JSON.stringify(want[x])}`);
    const udp = (() => { try { sh('ip', ['netns', 'exec', m.ns, process.execPath, '-e', `const s=require('dgram').createSocket('udp4');s.send('x',3478,'${server}',(e)=>process.exit(e?1:0))`]); return true; } catch { return false; } })();
    assert(udp === (x === 'o'), `network (${x}) is not what it says: a UDP datagram to the server ${udp ? 'leaves' : 'does not leave'}`);
  }

  const src = join(dir, 'restricted.bin');
  const file = writeRandomFile(src, size);
  for (const x of nets) {
    // The member's uplink at 16 Mbit/s: the page's direct attempt has 10 s
    // before TURN is tried, so relay first carries the start of the file
    // and a TURN session takes the rest over mid-file (not on (d): no TURN).
    sh('ip', ['netns', 'exec', members[x].ns, 'tc', 'qdisc', 'replace', 'dev', `rm${pid}-${x}`, 'root', 'tbf', 'rate', '16mbit', 'burst', '64kb', 'latency', '50ms']);
    const secure = [`--ignore-certificate-errors-spki-list=${spki}`];
    const ctxO = await launch({ name: 'open', args: secure, executable: members.o.wrapper });
    const ctxX = await launch({ name: `net-${x}`, args: x === 'c' ? [...secure, `--proxy-server=http://${proxy}:3128`] : secure, executable: members[x].wrapper });
    await recordPeerConnections(ctxX);
    const O = ctxO.pages()[0] ?? await ctxO.newPage();
    const X = ctxX.pages()[0] ?? await ctxX.newPage();
    if (x === 'd') { // X opens the room at the middlebox
      const link = await createAndJoin(url, '', O, []);
      await X.goto(mbURL + '/' + link.slice(link.indexOf('#')));
      await X.waitForSelector('#conn-status[data-state=connected]', { timeout: 60000 });
    } else {
      await createAndJoin(url, '', O, [X]);
    }
    await waitOnline(O, 1);
    await waitOnline(X, 1);
    await chat(X, O, `hello from network ${x}`);
    await chat(O, X, 'hello back');
    const wire = await X.getAttribute('#conn-status', 'data-wire');
    const mark = prox.out.length;
    const t0 = performance.now();
    await X.setInputFiles('#file-input', src);
    // A loaded 2-core machine moved pages' TURN traffic at 0.6 MB/s
    // (BENCHMARKS.md): wait up to 10 minutes for the card, then read it.
    const card = '#feed li.file[data-direction=recv]:has(.file-name:text-is("restricted.bin"))';
    await O.waitForSelector(`${card}[data-state=done], ${card}[data-state=failed]`, { timeout: 600000 });
    const rc = await finishedCard(O, 'recv', 'restricted.bin');
    const secs = (performance.now() - t0) / 1000;
    const sc = await finishedCard(X, 'send', 'restricted.bin');
    const row = await X.textContent('#feed li.file[data-direction=send]:has(.file-name:text-is("restricted.bin")) li.recipient');
    // The card says TURN for any relayed path; the sender's own relay
    // candidate says over what it reached the TURN server.
    const local = await X.evaluate(async () => {
      const out = [];
      for (const pc of window.__pcs) {
        if (pc.connectionState !== 'connected') continue;
        const st = await pc.getStats();
        st.forEach((t) => {
          if (t.type !== 'transport' || !t.selectedCandidatePairId) return;
          const c = st.get(st.get(t.selectedCandidatePairId)?.localCandidateId);
          if (c) out.push({ type: c.candidateType, relayProtocol: c.relayProtocol || '', bytesSent: t.bytesSent });
        });
      }
      return out;
    });
    await checkReceived(O, rc, file);
    // On (d) the middlebox's 403 to the WebSocket is logged by Chromium itself: expected.
    const unexpected = (c) => c.errors.filter((e) => !(x === 'd' && /WebSocket connection to .* failed: .*403/.test(e)));
    for (const c of [ctxO, ctxX]) assert(unexpected(c).length === 0, 'page errors: ' + unexpected(c).join('; '));
    await ctxX.close();
    await ctxO.close();
    // The proxy says what each tunnel carried when it closes.
    await new Promise((r) => setTimeout(r, 1000));
    const tunnels = prox.out.slice(mark).split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const turnTLS = tunnels.filter((t) => t.closed === `${server}:443`).reduce((n, t) => n + t.bytes, 0);
    console.log(`restrictive: network (${x}): ${size / MIB} MiB page -> page via ${sc.path} (receiver: ${rc.path}; the sender's selected local candidates ${JSON.stringify(local)}) in ${secs.toFixed(1)} s (${(size / secs / 1e6).toFixed(1)} MB/s); the sender's wire ${wire}; its row: ${row}; proxy: ${JSON.stringify(tunnels.filter((t) => !t.open))}`);
    if (x !== 'd') {
      assert(/Via the room server, then/.test(row), `network (${x}): the sender's row does not show a move from the relay mid-file: ${row}`);
    }
    if (x === 'b' || x === 'c') {
      assert(sc.path === 'TURN' && local.some((c) => c.type === 'relay' && c.relayProtocol === 'tls'), `network (${x}): the sender's card says path ${sc.path}, its selected local candidates ${JSON.stringify(local)}; want TURN over TLS on 443${x === 'c' ? ' through the proxy' : ''} (${sc.status})`);
    }
    if (x === 'c') {
      assert(turnTLS >= size, `network (c): the proxy's tunnels to ${server}:443 (WSS and TURN-TLS, one port) carried ${turnTLS} bytes, want at least the file's ${size}`);
    }
    if (x === 'd') {
      assert(wire === 'http' && sc.path === 'relay', `network (d): the sender's wire ${wire}, path ${sc.path}; want the HTTP fallback and the relay`);
      assert(/refused/.test(mb.out), 'network (d): the middlebox refused no WebSocket upgrade');
    } else {
      assert(wire !== 'http', `network (${x}): the sender fell back to HTTP (${wire}), want WebSocket`);
    }
  }
});
