// `serve --tls auto` on the machine's LAN address: Chromium (certificate
// errors ignored, as a user accepting the self-signed certificate once) gets
// a secure context with WebCrypto, creates a room over WSS and is connected.
// The same page over plain HTTP on that address has no crypto.subtle: what
// the server's warning is about.
import { spawn } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { main, buildBinary, tempDir, onCleanup, stopProc, assert, CHROMIUM } from './lib.mjs';

const T = { timeout: 60000 };

function lanAddress() {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return null;
}

/** Starts serve with args; resolves to the first line matching re (its match). */
function serve(bin, args, re) {
  const proc = spawn(bin, ['serve', '--turn-port', '0', '--metrics-addr', '', '--log-level', 'warn', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  onCleanup(() => stopProc(proc));
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error('server did not start in 20 s:\n' + out)), 20000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(re);
      if (m) { clearTimeout(t); resolve({ m, out: () => out }); }
    });
    proc.stderr.on('data', (d) => { out += d; });
    proc.on('exit', (code) => { clearTimeout(t); reject(new Error(`server exited with ${code}:\n${out}`)); });
  });
}

await main('tls', async () => {
  const ip = lanAddress();
  assert(ip, 'no non-loopback IPv4 address (the test needs a LAN address)');
  assert(existsSync(CHROMIUM), `${CHROMIUM} is missing`);
  const bin = buildBinary();

  const tls = await serve(bin, ['--addr', `${ip}:0`, '--tls', 'auto', '--tls-dir', tempDir()],
    /open (https:\/\/[0-9.]+:\d+\/) \(or scan this QR code\)/);
  const url = tls.m[1];
  assert(/SHA-256 fingerprint ([0-9A-F]{2}:){31}[0-9A-F]{2}/.test(tls.out()), 'fingerprint printed');
  const plain = await serve(bin, ['--addr', `${ip}:0`], /serving on (http:\/\/\S+)/);
  // The warning is the next line after "serving on": it may arrive in a later chunk.
  for (let i = 0; i < 50 && !/WARNING: plain HTTP .*phones/.test(plain.out()); i++) await new Promise((r) => setTimeout(r, 100));
  assert(/WARNING: plain HTTP .*phones/.test(plain.out()), `plain HTTP on a LAN address warns; the server printed:\n${plain.out()}`);

  const ctx = await chromium.launchPersistentContext(tempDir('cloakroom-profile-'), {
    executablePath: CHROMIUM, chromiumSandbox: false, headless: true, ignoreHTTPSErrors: true,
  });
  onCleanup(() => ctx.close());
  const page = ctx.pages()[0] ?? await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));

  await page.goto(plain.m[1] + '/');
  const insecure = await page.evaluate(() => ({ secure: isSecureContext, subtle: !!globalThis.crypto?.subtle }));
  assert(!insecure.secure && !insecure.subtle, `plain HTTP on ${ip}: ${JSON.stringify(insecure)}, want no WebCrypto`);

  await page.goto(url);
  const secure = await page.evaluate(() => ({ secure: isSecureContext, subtle: typeof crypto.subtle?.importKey }));
  assert(secure.secure && secure.subtle === 'function', `HTTPS on ${ip}: ${JSON.stringify(secure)}, want WebCrypto`);
  await page.click('#create');
  await page.waitForSelector('#conn-status[data-state=connected]', T);
  const link = await page.inputValue('#invite-link');
  assert(link.startsWith(url.replace(/\/$/, '') + '/#'), `invite link ${link} on the HTTPS origin`);
  assert(errors.length === 0, `page errors: ${errors.join('; ')}`);
  console.log(`tls: ${url} is a secure context with WebCrypto; a room was created over WSS`);
});
