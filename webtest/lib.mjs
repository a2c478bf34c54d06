// Shared helpers of the browser tests: build the binary once, start
// `cloakroom serve` on a free loopback port, launch Debian's chromium through
// playwright-core (no browser download), serve test-only page modules through
// a route, and clean everything up.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { chromium } from 'playwright-core';

export const here = dirname(fileURLToPath(import.meta.url));
export const root = dirname(here);
export const outDir = join(root, 'test-output');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

const cleanups = [];
export function onCleanup(fn) { cleanups.push(fn); }
export async function cleanup() {
  while (cleanups.length) {
    try { await cleanups.pop()(); } catch (e) { console.error('cleanup:', e.message); }
  }
}

export function tempDir(prefix = 'cloakroom-webtest-') {
  const d = mkdtempSync(join(tmpdir(), prefix));
  onCleanup(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Builds ./cloakroom into a temp dir (or uses $CLOAKROOM_BIN) and returns its path. */
export function buildBinary() {
  if (process.env.CLOAKROOM_BIN) return process.env.CLOAKROOM_BIN;
  const bin = join(tempDir('cloakroom-bin-'), 'cloakroom');
  execFileSync('go', ['build', '-o', bin, '.'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  return bin;
}

/** Starts `cloakroom serve` on 127.0.0.1 with a free port; resolves to {url, proc, logs}. */
export async function startServer(bin, extra = []) {
  const args = ['serve', '--addr', '127.0.0.1:0', '--turn-port', '0', '--log-level', 'warn', ...extra];
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs = [];
  proc.stderr.on('data', (d) => logs.push(String(d)));
  onCleanup(() => stopProc(proc));
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error('server did not start in 20 s:\n' + out + logs.join(''))), 20000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/serving on (http:\/\/[0-9.:]+)/);
      if (m) { clearTimeout(t); resolve(m[1]); }
    });
    proc.on('exit', (code) => { clearTimeout(t); reject(new Error(`server exited with ${code}:\n${out}${logs.join('')}`)); });
  });
  return { url, proc, logs };
}

export function stopProc(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => { proc.kill('SIGKILL'); }, 5000);
    proc.once('exit', () => { clearTimeout(t); resolve(); });
    proc.kill('SIGTERM');
  });
}

/** Runs a command to completion; resolves {code, stdout, stderr}; rejects after timeoutMs.
 * The returned stderr getter reads what it printed so far. */
export function run(cmd, args, { timeoutMs = 120000, env } = {}) {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ? { ...process.env, ...env } : process.env });
  onCleanup(() => stopProc(proc));
  let stdout = '', stderr = '';
  proc.stdout.on('data', (d) => { stdout += d; });
  proc.stderr.on('data', (d) => { stderr += d; });
  const done = new Promise((resolve, reject) => {
    const t = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`${cmd} ${args.join(' ')} timed out after ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`)); }, timeoutMs);
    // 'close', not 'exit': 'exit' can come before the last output is read.
    proc.on('close', (code) => { clearTimeout(t); resolve({ code, stdout, stderr }); });
  });
  return { proc, done, get stderr() { return stderr; } }; // stderr so far, for a test that fails early
}

/** A fresh browser (persistent context in a new temp profile, or in profile). Page errors
 * and console errors are collected in ctx.errors; warnings and errors are printed
 * (every console message with WEBTEST_CONSOLE=1, to see what a page did). args are extra Chromium
 * command-line switches (e.g. a fake camera); executable another program
 * that runs Chromium (e.g. a script that starts it in a network namespace). */
export async function launch({ viewport = { width: 1280, height: 800 }, name = 'browser', args = [], executable = CHROMIUM, profile = '', acceptAll = true } = {}) {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  // profile: a directory to reuse (a browser closed and opened again keeps
  // its IndexedDB); by default a fresh temp profile.
  profile ||= tempDir('cloakroom-profile-');
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: executable, chromiumSandbox: false, headless: true, viewport,
    acceptDownloads: true, args,
  });
  ctx.errors = [];
  onCleanup(() => ctx.close());
  // Pages ask before receiving files above 50 MiB (control.js): tests that
  // are not about that accept every file, as a user who set the limit high.
  if (acceptAll) {
    await ctx.addInitScript(() => {
      try { if (localStorage.getItem('cloakroom.acceptAboveMiB') === null) localStorage.setItem('cloakroom.acceptAboveMiB', '1000000'); } catch { /* no storage here */ }
    });
  }
  await ctx.route('**/__test/**', (route) => {
    const path = new URL(route.request().url()).pathname.replace(/^\/__test\//, '');
    if (!/^[a-z0-9._-]+$/.test(path)) return route.fulfill({ status: 404 });
    route.fulfill({ status: 200, contentType: 'text/javascript', body: readFileSync(join(here, 'pages', path)) });
  });
  ctx.on('page', (page) => watchPage(page, name, ctx.errors));
  for (const p of ctx.pages()) watchPage(p, name, ctx.errors);
  return ctx;
}

function watchPage(page, name, errors) {
  page.on('pageerror', (e) => { errors.push(`${name}: page error: ${e.message}`); console.error(`[${name}] page error:`, e.message); });
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning' || process.env.WEBTEST_CONSOLE) console.error(`[${name}] console.${m.type()}: ${m.text()}`);
    if (m.type() === 'error') errors.push(`${name}: console error: ${m.text()}`);
  });
}

export function sha256File(path) {
  const h = createHash('sha256');
  h.update(readFileSync(path));
  return h.digest('hex');
}

export function ensureOutDir() { mkdirSync(outDir, { recursive: true }); return outDir; }

export function assert(cond, msg) { if (!cond) throw new Error('assertion failed: ' + msg); }

/** Runs main() with cleanup and a non-zero exit on any failure. */
export async function main(name, fn) {
  const t0 = Date.now();
  const timer = setTimeout(() => { console.error(`${name}: FAIL: timed out`); cleanup().finally(() => process.exit(1)); }, Number(process.env.WEBTEST_TIMEOUT_MS || 300000));
  let code = 0;
  try {
    await fn();
    console.log(`${name}: ok (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    console.error(`${name}: FAIL: ${e.stack || e}`);
    code = 1;
  }
  clearTimeout(timer);
  await cleanup();
  process.exit(code);
}
