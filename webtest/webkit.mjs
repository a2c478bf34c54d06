// A driver for WebKitGTK (Debian's webkit2gtk-driver: Safari's engine) for
// the browser tests: `xvfb-run -a WebKitWebDriver --port=N`, one MiniBrowser
// session in --automation mode, spoken to in plain W3C WebDriver (classic,
// HTTP + JSON) over fetch. No browser download, no selenium.
//
// Its page object has the same small interface as firefox.mjs's and
// engines-lib.mjs's wrapper of a Playwright page (goto, reload, evaluate, waitFor,
// click, fill, press, setInputFiles, screenshot, close, errors), so a test
// can run one script in any engine.
//
// Console errors: classic WebDriver has no console or log events, and this
// WebKitWebDriver offers no WebDriver BiDi (a session asking for
// webSocketUrl is refused). So errors() reads what the page itself recorded:
// js/errlog.js, the page's first (classic) script, keeps uncaught errors,
// unhandled rejections, console.error calls, failed element loads and CSP
// violations in window.__cloakroomErrors from before any module runs. What
// the engine logs on its own (a failed fetch, a network 404 of a resource
// that fires no error event) is not seen: that limit is the driver's, and
// docs/BROWSERS.md says so. Pages without errlog.js (a blank page) get the
// same hooks installed after each navigation by goto() — from then on only.
import { spawn, execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { onCleanup } from './lib.mjs';
import { freePort } from './p2plib.mjs';

export const MINIBROWSER = process.env.MINIBROWSER || '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';
const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';
const KEYS = { Enter: '\uE007', Tab: '\uE004', Escape: '\uE00C', Backspace: '\uE003' };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The hooks a page without js/errlog.js gets after each navigation. */
const HOOK = `if (!window.__cloakroomErrors) {
  const errs = window.__cloakroomErrors = [];
  const push = (s) => { if (errs.length < 100) errs.push(String(s).slice(0, 500)); };
  addEventListener('error', (e) => push('page error: ' + (e.message || (e.target && e.target.src) || 'error')), true);
  addEventListener('unhandledrejection', (e) => push('unhandled rejection: ' + ((e.reason && e.reason.message) || e.reason)));
  const ce = console.error;
  console.error = function (...a) { push('console error: ' + a.map(String).join(' ')); return ce.apply(this, a); };
}`;

/** Starts WebKitWebDriver under a fresh X display and opens a MiniBrowser
 * session; resolves to a page (see the file's comment). name tags its
 * errors; width/height size the window. */
export async function launchWebKit({ name = 'webkit', width = 1280, height = 800 } = {}) {
  const port = await freePort();
  // Its own process group: cleanup ends xvfb-run, Xvfb, the driver and the
  // browser it started, and nothing else.
  const proc = spawn('xvfb-run', ['-a', '-s', '-screen 0 1600x1200x24', 'WebKitWebDriver', `--port=${port}`], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((r) => proc.once('exit', r));
  onCleanup(async () => {
    if (proc.exitCode !== null) return;
    try { process.kill(-proc.pid, 'SIGTERM'); } catch { return; }
    const t = setTimeout(() => { try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ } }, 3000);
    await exited;
    clearTimeout(t);
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try { if ((await fetch(base + '/status')).ok) break; } catch { /* not up yet */ }
    if (proc.exitCode !== null || i > 150) throw new Error(`WebKitWebDriver did not start: ${log}`);
    await sleep(100);
  }
  const caps = {
    browserName: 'MiniBrowser',
    'webkitgtk:browserOptions': { binary: MINIBROWSER, args: ['--automation'] },
  };
  const res = await wd(base, 'POST', '/session', { capabilities: { alwaysMatch: caps } });
  const page = new WebKitPage(base, res.sessionId, name, () => log);
  page.pgid = proc.pid;
  onCleanup(() => page.close());
  await page._cmd('POST', '/timeouts', { script: 120000, pageLoad: 60000 });
  await page.setViewport(width, height).catch(() => {});
  return page;
}

async function wd(base, method, path, body) {
  const r = await fetch(base + path, {
    method, headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const j = await r.json().catch(() => ({ value: { error: `HTTP ${r.status}`, message: 'not JSON' } }));
  if (!r.ok || j.value?.error) throw new Error(`WebDriver ${method} ${path}: ${j.value?.error}: ${j.value?.message}`);
  return j.value;
}

export class WebKitPage {
  constructor(base, session, name, log) {
    this.base = base; this.session = session; this.name = name; this.engine = 'webkit'; this._log = log;
    this._closed = false;
    this._seen = 0;
    this._errors = []; // of pages navigated away from, and of this one so far
  }

  _cmd(method, path, body) { return wd(this.base, method, `/session/${this.session}${path}`, body); }

  /** Navigates, waits for the load, then makes sure the error hooks are in.
   * (Only the list of the page navigated to counts from here; what the
   * page before recorded was collected first.) */
  async goto(url) {
    await this.collectErrors().catch(() => {});
    this._seen = 0;
    await this._cmd('POST', '/url', { url });
    await this._cmd('POST', '/execute/sync', { script: HOOK, args: [] });
    // The tests take every file without an Accept (issue 14's threshold; lib.mjs's launch acceptAll does the same for Chromium).
    await this._cmd('POST', '/execute/sync', { script: "try { if (localStorage.getItem('cloakroom.acceptAboveMiB') === null) localStorage.setItem('cloakroom.acceptAboveMiB', '1000000'); } catch {}", args: [] }).catch(() => {});
  }

  async url() { return this._cmd('GET', '/url'); }

  /** Reloads the page and waits for the load (the error hooks as after goto). */
  async reload() {
    await this.collectErrors().catch(() => {});
    this._seen = 0;
    await this._cmd('POST', '/refresh', {});
    await this._cmd('POST', '/execute/sync', { script: HOOK, args: [] });
  }

  /** Closes this tab after opening a new, blank one in the same browser and
   * moves to it: a closed tab (its sessionStorage gone), not a closed
   * browser (the ephemeral IndexedDB of the session stays). */
  async replaceTab() {
    await this.collectErrors().catch(() => {});
    const { handle } = await this._cmd('POST', '/window/new', { type: 'tab' });
    await this._cmd('DELETE', '/window');
    await this._cmd('POST', '/window', { handle });
    this._seen = 0;
  }

  /** Sizes the window so that the page's viewport is width x height, as
   * far as MiniBrowser lets it (its window keeps a minimum width of about
   * 450 px: a phone's 390 px cannot be had); resolves to the viewport got. */
  async setViewport(width, height) {
    await this._cmd('POST', '/window/rect', { width, height });
    const got = await this._cmd('POST', '/execute/sync', { script: 'return [innerWidth, innerHeight]', args: [] });
    await this._cmd('POST', '/window/rect', { width: width + (width - got[0]), height: height + (height - got[1]) });
    const [w, h] = await this._cmd('POST', '/execute/sync', { script: 'return [innerWidth, innerHeight]', args: [] });
    return { width: w, height: h };
  }

  /** Runs fn(arg) in the page (fn may be async); resolves to its JSON result. */
  async evaluate(fn, arg) {
    const script = `const done = arguments[arguments.length - 1];
      Promise.resolve().then(() => (${fn})(arguments[0]))
        .then((v) => done({ v: v === undefined ? null : v }), (e) => done({ e: String((e && e.stack) || e) }));`;
    const r = await this._cmd('POST', '/execute/async', { script, args: [arg === undefined ? null : arg] });
    if (r && r.e) throw new Error(`${this.name}: in the page: ${r.e}`);
    return r?.v;
  }

  /** Polls fn(arg) in the page until it returns something truthy; resolves to it. */
  async waitFor(fn, arg, { timeout = 60000, interval = 150, what = '' } = {}) {
    const end = Date.now() + timeout;
    for (;;) {
      let v;
      try { v = await this.evaluate(fn, arg); } catch (e) { if (Date.now() > end) throw e; }
      if (v) return v;
      if (Date.now() > end) throw new Error(`${this.name}: timed out after ${timeout} ms waiting for ${what || String(fn).slice(0, 200)}`);
      await sleep(interval);
    }
  }

  async waitForSelector(sel, opts = {}) {
    return this.waitFor((s) => { const e = document.querySelector(s); return !!e && !e.closest('[hidden]'); }, sel, { what: sel, ...opts });
  }

  async _find(sel) {
    const v = await this._cmd('POST', '/element', { using: 'css selector', value: sel });
    return v[ELEMENT];
  }

  async click(sel) { await this._cmd('POST', `/element/${await this._find(sel)}/click`, {}); }

  /** Replaces an input's text with text, typed as keys. */
  async fill(sel, text) {
    const id = await this._find(sel);
    await this._cmd('POST', `/element/${id}/clear`, {});
    await this._cmd('POST', `/element/${id}/value`, { text });
  }

  /** Presses a key (Enter, Tab, Escape, Backspace) in an element. */
  async press(sel, key) {
    await this._cmd('POST', `/element/${await this._find(sel)}/value`, { text: KEYS[key] ?? key });
  }

  /** Gives a file input a file from disk (WebDriver's send keys to a file input). */
  async setInputFiles(sel, path) {
    await this._cmd('POST', `/element/${await this._find(sel)}/value`, { text: path });
  }

  /** The resident memory (MiB) of each WebKit process of this session
   * (its process group: the web, network and GPU processes, MiniBrowser),
   * for logs. */
  rssMiB() {
    const out = {};
    const ps = execFileSync('ps', ['-o', 'rss=,comm=', '-g', String(this.pgid)], { encoding: 'utf8' });
    for (const line of ps.trim().split('\n')) {
      const m = /^\s*(\d+)\s+(.*)$/.exec(line);
      if (m && /WebKit|MiniBrowser/.test(m[2])) out[m[2]] = (out[m[2]] || 0) + Math.round(Number(m[1]) / 1024);
    }
    return out;
  }

  async screenshot(path) {
    writeFileSync(path, Buffer.from(await this._cmd('GET', '/screenshot'), 'base64'));
  }

  /** Moves what the page recorded since the last call into the error list. */
  async collectErrors() {
    if (this._closed) return this._errors;
    const errs = await this._cmd('POST', '/execute/sync', { script: 'return window.__cloakroomErrors || []', args: [] });
    for (const e of errs.slice(this._seen)) this._errors.push(`${this.name}: ${e}`);
    this._seen = errs.length;
    return this._errors;
  }

  /** The errors recorded so far (see the file's comment for what is seen). */
  async errors() { return [...await this.collectErrors()]; }

  async close() {
    if (this._closed) return;
    await this.collectErrors().catch(() => {});
    this._closed = true;
    await this._cmd('DELETE', '').catch(() => {});
  }
}
