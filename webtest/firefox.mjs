// A driver for Firefox (Debian's firefox-esr) for the browser tests:
// puppeteer-core 24 over WebDriver BiDi (geckodriver is not packaged here),
// HOME in a fresh temp dir (Firefox writes ~/.mozilla and ~/.cache there),
// and a fresh profile. Page errors and console errors are collected as
// lib.mjs's launch() does for Chromium.
//
// launchFirefox() resolves to a page with the small interface shared with
// webkit.mjs and engines-lib.mjs's Playwright wrapper (goto, reload, evaluate,
// waitFor, click, fill, press, setInputFiles, screenshot, close, errors);
// .page is the puppeteer Page and .browser the Browser, for anything else.
import puppeteer from 'puppeteer-core';
import { existsSync } from 'node:fs';
import { tempDir, onCleanup } from './lib.mjs';

export const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';

/** profile: a profile directory to use (kept: a test may close the browser
 * and open the same profile again); by default a fresh one, removed at
 * cleanup. */
export async function launchFirefox({ name = 'firefox', width = 1280, height = 800, prefs = {}, profile = tempDir('cloakroom-firefox-profile-') } = {}) {
  if (!existsSync(FIREFOX)) throw new Error(`${FIREFOX} is missing: apt-get install -y firefox-esr`);
  const home = tempDir('cloakroom-firefox-home-');
  const browser = await puppeteer.launch({
    browser: 'firefox', executablePath: FIREFOX, headless: true, userDataDir: profile,
    defaultViewport: { width, height },
    env: { ...process.env, HOME: home, XDG_CACHE_HOME: home + '/.cache', XDG_CONFIG_HOME: home + '/.config', MOZ_CRASHREPORTER_DISABLE: '1' },
    extraPrefsFirefox: {
      'media.autoplay.default': 0, // tests check that videos can play
      'media.navigator.permission.disabled': true,
      ...prefs,
    },
  });
  onCleanup(() => browser.close().catch(() => {}));
  const errors = [];
  const watch = (page) => {
    page.on('pageerror', (e) => { errors.push(`${name}: page error: ${e.message}`); console.error(`[${name}] page error:`, e.message); });
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warn') console.error(`[${name}] console.${m.type()}: ${m.text()}`);
      if (m.type() === 'error') errors.push(`${name}: console error: ${m.text()}`);
    });
  };
  browser.on('targetcreated', async (t) => { const p = await t.page().catch(() => null); if (p) watch(p); });
  const page = (await browser.pages())[0] ?? await browser.newPage();
  watch(page);
  return new FirefoxPage(browser, page, name, errors);
}

// The tests take every file without an Accept (issue 14's threshold; lib.mjs's launch acceptAll does the same for Chromium).
const ACCEPT_ALL = `try { if (localStorage.getItem('cloakroom.acceptAboveMiB') === null) localStorage.setItem('cloakroom.acceptAboveMiB', '1000000'); } catch {}`;

export class FirefoxPage {
  constructor(browser, page, name, errors) {
    this.browser = browser; this.page = page; this.name = name; this.engine = 'firefox'; this._errors = errors;
  }

  async goto(url) {
    await this.page.goto(url, { waitUntil: 'load' });
    await this.page.evaluate(ACCEPT_ALL).catch(() => {});
  }
  async url() { return this.page.url(); }
  async reload() { await this.page.reload({ waitUntil: 'load' }); }
  async setViewport(width, height) { await this.page.setViewport({ width, height }); }

  /** Runs fn(arg) in the page (fn may be async); resolves to its result. */
  async evaluate(fn, arg) { return this.page.evaluate(fn, arg); }

  /** Polls fn(arg) in the page until it returns something truthy; resolves to it. */
  async waitFor(fn, arg, { timeout = 60000, interval = 150, what = '' } = {}) {
    try {
      const h = await this.page.waitForFunction(fn, { timeout, polling: interval }, arg);
      return h.jsonValue();
    } catch (e) {
      throw new Error(`${this.name}: ${e.message} waiting for ${what || String(fn).slice(0, 200)}`);
    }
  }

  async waitForSelector(sel, { timeout = 60000 } = {}) {
    return this.waitFor((s) => { const e = document.querySelector(s); return !!e && !e.closest('[hidden]'); }, sel, { timeout, what: sel });
  }

  async click(sel) { await this.page.click(sel); }

  /** Replaces an input's text with text, typed as keys. */
  async fill(sel, text) {
    await this.page.$eval(sel, (e) => { e.value = ''; });
    await this.page.type(sel, text);
  }

  async press(sel, key) {
    await this.page.focus(sel);
    await this.page.keyboard.press(key);
  }

  async setInputFiles(sel, path) {
    const h = await this.page.$(sel);
    await h.uploadFile(path);
  }

  async screenshot(path) { await this.page.screenshot({ path }); }

  async errors() { return [...this._errors]; }

  async close() { await this.browser.close().catch(() => {}); }
}
