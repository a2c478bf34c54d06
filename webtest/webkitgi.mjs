// A WebKitGTK browser whose storage outlives it (webkit-persist.py: Debian's
// WebKitGTK 2.50 through GObject introspection, a persistent data
// directory), with the small page interface of engines-lib.mjs (goto,
// evaluate, waitFor, waitForSelector, click, fill, errors, close). For the
// one check WebDriver cannot make in WebKit: MiniBrowser under --automation
// keeps nothing once closed (docs/BROWSERS.md), so a saved room reopened
// after closing the browser is checked here. Clicks and typing are DOM
// events sent by script (no native input), which is all the saved-room
// dialogs need.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { here, onCleanup } from './lib.mjs';

/** Starts the browser on profile (a directory kept across launches). */
export async function launchWebKitPersistent({ name = 'webkit-persist', profile, width = 1280, height = 800 } = {}) {
  const proc = spawn('xvfb-run', ['-a', '/usr/bin/python3', join(here, 'webkit-persist.py'), profile, String(width), String(height)],
    { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  const page = new WebKitGIPage(proc, name);
  onCleanup(() => page.close());
  return page;
}

export class WebKitGIPage {
  constructor(proc, name) {
    this.proc = proc; this.name = name; this.engine = 'webkit'; this._id = 0; this._waits = new Map(); this._errors = []; this._log = '';
    let buf = '';
    proc.stdout.on('data', (d) => {
      buf += d;
      for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) {
        const m = JSON.parse(buf.slice(0, i));
        this._waits.get(m.id)?.(m);
        this._waits.delete(m.id);
      }
    });
    proc.stderr.on('data', (d) => { this._log = (this._log + d).slice(-4000); });
    this.exited = new Promise((r) => proc.on('exit', r));
    this.exited.then(() => { for (const w of this._waits.values()) w({ ok: false, error: `${name}: the browser ended: ${this._log.trim().slice(-500)}` }); });
  }

  _cmd(o, timeout = 60000) {
    return new Promise((resolve, reject) => {
      o.id = ++this._id;
      const t = setTimeout(() => { this._waits.delete(o.id); reject(new Error(`${this.name}: ${o.op} took over ${timeout} ms`)); }, timeout);
      this._waits.set(o.id, (m) => { clearTimeout(t); if (m.ok) resolve(m.value); else reject(new Error(`${this.name}: ${m.error}`)); });
      this.proc.stdin.write(JSON.stringify(o) + '\n');
    });
  }

  async _collect() {
    const got = await this._cmd({ op: 'eval', body: 'return (window.__cloakroomErrors || []).map(String);' }).catch(() => []);
    this._errors.push(...(got || []));
  }

  async goto(url) { await this._collect(); await this._cmd({ op: 'goto', url }); }
  async evaluate(fn, arg) { return this._cmd({ op: 'eval', body: `return await (${fn.toString()})(arg);`, arg: arg ?? null }); }
  async waitFor(fn, arg, { timeout = 60000, interval = 150, what = '' } = {}) {
    const end = Date.now() + timeout;
    for (;;) {
      const v = await this.evaluate(fn, arg);
      if (v) return v;
      if (Date.now() > end) throw new Error(`${this.name}: timed out waiting for ${what || String(fn).slice(0, 200)}`);
      await new Promise((r) => setTimeout(r, interval));
    }
  }
  async waitForSelector(sel, { timeout = 60000 } = {}) {
    return this.waitFor((s) => { const e = document.querySelector(s); return !!e && !e.closest('[hidden]'); }, sel, { timeout, what: sel });
  }
  async click(sel) {
    await this.waitForSelector(sel);
    await this.evaluate((s) => { document.querySelector(s).click(); return true; }, sel);
  }
  async fill(sel, text) {
    await this.waitForSelector(sel);
    await this.evaluate(([s, v]) => {
      const e = document.querySelector(s);
      e.focus();
      e.value = v;
      e.dispatchEvent(new Event('input', { bubbles: true }));
      e.dispatchEvent(new Event('change', { bubbles: true }));
      return true;
    }, [sel, text]);
  }
  /** A key pressed in sel, as script events (Enter in the composer sends). */
  async press(sel, key) {
    await this.waitForSelector(sel);
    await this.evaluate(([s, k]) => {
      const e = document.querySelector(s);
      e.focus();
      e.dispatchEvent(new KeyboardEvent('keydown', { key: k, code: k, bubbles: true, cancelable: true }));
      return true;
    }, [sel, key]);
  }
  async screenshot() { /* not offered by this harness */ }
  async errors() { await this._collect(); return this._errors.splice(0); }
  /** Ends the browser (its profile stays on disk). */
  async close() {
    if (this.proc.exitCode !== null || this.proc.signalCode) return;
    await this._collect();
    await this._cmd({ op: 'quit' }, 10000).catch(() => {});
    const t = setTimeout(() => { try { process.kill(-this.proc.pid, 'SIGKILL'); } catch { /* gone */ } }, 10000);
    await this.exited;
    clearTimeout(t);
  }
}
