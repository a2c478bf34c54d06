// Helpers of the tests that build network namespaces (stream_video.mjs,
// swarm_netns.mjs): running programs, `ip` with cleanups, a free 10.B/16.
import { execFileSync } from 'node:child_process';
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
