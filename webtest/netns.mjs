// Helpers of the tests that build network namespaces (stream_video.mjs,
// swarm_netns.mjs): running programs, `ip` with cleanups, a free 10.B/16.
import { execFileSync, spawn } from 'node:child_process';
import { onCleanup } from './lib.mjs';

/** Runs a program to completion; throws with its output on failure. */
export function sh(prog, args, opts = {}) {
  try {
    return execFileSync(prog, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts }).trim();
  } catch (e) {
    throw new Error(`${prog} ${args.join(' ')}: ${e.message}\n${e.stdout || ''}${e.stderr || ''}`);
  }
}

export const ip = (...a) => sh('ip', a);

/** Registers `ip args…` as a cleanup; an object already gone is fine. */
export function cleanupIP(...a) {
  onCleanup(() => {
    try { execFileSync('ip', a, { stdio: ['ignore', 'pipe', 'pipe'] }); } catch (e) {
      const out = String(e.stderr || '');
      if (!/Cannot find|No such|does not exist/.test(out)) console.error(`cleanup: ip ${a.join(' ')}: ${out.trim()}`);
    }
  });
}

/** B such that nothing in the root namespace uses 10.B.0.0/16 (cf. freeOctet in cli_netns_test.go). */
export function freeOctet() {
  const used = ip('-4', '-o', 'addr', 'show') + '\n' + ip('-4', 'route', 'show', 'table', 'all');
  const start = 20 + (process.pid * 7) % 200;
  for (let i = 0; i < 200; i++) {
    const b = 20 + (start - 20 + i) % 200;
    if (!new RegExp(`(^|[^0-9.])10\\.${b}\\.`, 'm').test(used)) return b;
  }
  throw new Error('no free 10.B.0.0/16 for the test topology');
}

/** Fails (never skips) when a program the test needs is missing. */
export function need(prog) {
  try { execFileSync('sh', ['-c', `command -v ${prog}`], { stdio: ['ignore', 'pipe', 'pipe'] }); } catch {
    throw new Error(`${prog} is missing (this test needs it; apt-get install -y ${prog === 'tc' || prog === 'ip' ? 'iproute2' : prog})`);
  }
}

/** The topology of the shaped-sender tests (the tests' comments draw it):
 * 10.B.0.1/32 on lo in the root namespace (the server), and a new netns
 * `cr<pid>-<tag>` reached over a veth pair (10.B.1.1 in the root namespace,
 * 10.B.1.2 in the netns, its default route), whose egress is shaped by tc
 * tbf to mbit Mbit/s. Everything is removed at cleanup. Returns the names
 * and addresses, the egress qdisc's statistics (qdisc()) and the kernel's
 * count of bytes the netns sent (txBytes()). */
export function shapedNamespace(tag, mbit) {
  const b = freeOctet(), pid = process.pid;
  const ns = `cr${pid}-${tag}`, host = `crh${pid}-${tag}`, dev = `crn${pid}-${tag}`;
  const server = `10.${b}.0.1`, gw = `10.${b}.1.1`, addr = `10.${b}.1.2`;
  ip('netns', 'add', ns);
  cleanupIP('netns', 'del', ns);
  ip('addr', 'add', server + '/32', 'dev', 'lo');
  cleanupIP('addr', 'del', server + '/32', 'dev', 'lo');
  ip('link', 'add', host, 'type', 'veth', 'peer', 'name', dev);
  cleanupIP('link', 'del', host); // also deletes its peer, wherever it is
  ip('link', 'set', dev, 'netns', ns);
  ip('addr', 'add', gw + '/24', 'dev', host);
  ip('link', 'set', host, 'up');
  ip('-n', ns, 'link', 'set', 'lo', 'up');
  ip('-n', ns, 'addr', 'add', addr + '/24', 'dev', dev);
  ip('-n', ns, 'link', 'set', dev, 'up');
  ip('-n', ns, 'route', 'add', 'default', 'via', gw);
  sh('tc', ['-n', ns, 'qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', `${mbit}mbit`, 'burst', '64kb', 'latency', '50ms']);
  const qdisc = () => sh('tc', ['-n', ns, '-s', 'qdisc', 'show', 'dev', dev]);
  const txBytes = () => {
    const s = sh('ip', ['netns', 'exec', ns, 'cat', `/sys/class/net/${dev}/statistics/tx_bytes`]);
    if (!/^\d+$/.test(s)) throw new Error(`tx_bytes of ${dev}: ${JSON.stringify(s)}`);
    return Number(s);
  };
  return { ns, host, dev, server, gw, addr, qdisc, txBytes };
}

/** A port free for both TCP and UDP on addr (a TURN port: TURN listens on
 * both). */
export function freePortPair(addr) {
  return new Promise((resolve, reject) => {
    const s = spawn(process.execPath, ['-e', `const n=require('net').createServer().listen(0,'${addr}',()=>{const p=n.address().port;const u=require('dgram').createSocket('udp4');u.bind(p,'${addr}',()=>{console.log(p);process.exit(0)});u.on('error',()=>process.exit(1))})`], { stdio: ['ignore', 'pipe', 'inherit'] });
    let o = ''; s.stdout.on('data', (d) => { o += d; });
    s.on('close', (c) => (c === 0 ? resolve(o.trim()) : reject(new Error('no free port on ' + addr))));
  });
}
