// Engine-neutral helpers of the browser tests that run in Chromium, Firefox
// and WebKit: a wrapper giving a Playwright page the same small interface as
// firefox.mjs's and webkit.mjs's pages (goto, url, reload, setViewport,
// evaluate, waitFor, waitForSelector, click, fill, press, setInputFiles,
// screenshot, close, errors), and room helpers written against that interface only — so the
// same steps drive all three engines.
import { launch, assert } from './lib.mjs';
import { launchFirefox } from './firefox.mjs';
import { launchWebKit } from './webkit.mjs';
import { SLICE } from './p2plib.mjs';

export const TIMEOUT = 120000;

/** Chromium through lib.mjs's launch(): a page with the shared interface;
 * .page is the Playwright Page and .ctx its context. */
export async function launchChromium({ name = 'chromium', width = 1280, height = 800, args, profile } = {}) {
  const ctx = await launch({ name, viewport: { width, height }, args, profile }); // profile: a directory to reuse
  const page = ctx.pages()[0] ?? await ctx.newPage();
  return new ChromiumPage(ctx, page, name);
}

export class ChromiumPage {
  constructor(ctx, page, name) { this.ctx = ctx; this.page = page; this.name = name; this.engine = 'chromium'; }
  async goto(url) { await this.page.goto(url); }
  async url() { return this.page.url(); }
  async reload() { await this.page.reload(); }
  async setViewport(width, height) { await this.page.setViewportSize({ width, height }); }
  async evaluate(fn, arg) { return this.page.evaluate(fn, arg); }
  async waitFor(fn, arg, { timeout = 60000, interval = 150, what = '' } = {}) {
    try {
      return await (await this.page.waitForFunction(fn, arg, { timeout, polling: interval })).jsonValue();
    } catch (e) {
      throw new Error(`${this.name}: ${e.message.split('\n')[0]} waiting for ${what || String(fn).slice(0, 200)}`);
    }
  }
  async waitForSelector(sel, { timeout = 60000 } = {}) {
    return this.waitFor((s) => { const e = document.querySelector(s); return !!e && !e.closest('[hidden]'); }, sel, { timeout, what: sel });
  }
  async click(sel) { await this.page.click(sel); }
  async fill(sel, text) { await this.page.fill(sel, text); }
  async press(sel, key) { await this.page.press(sel, key); }
  async setInputFiles(sel, path) { await this.page.setInputFiles(sel, path); }
  async screenshot(path) { await this.page.screenshot({ path }); }
  async errors() { return [...this.ctx.errors]; }
  async close() { await this.ctx.close(); }
}

/** Launches a page in engine ('chromium', 'firefox' or 'webkit'). */
export function launchEngine(engine, opts = {}) {
  switch (engine) {
    case 'chromium': return launchChromium({ name: engine, ...opts });
    case 'firefox': return launchFirefox({ name: engine, ...opts });
    case 'webkit': return launchWebKit({ name: engine, ...opts });
  }
  throw new Error('unknown engine ' + engine);
}

// ---- room steps -------------------------------------------------------------

/** Creates a room on p (at url + query); resolves to {link, code}. */
export async function createRoom(p, url, query = '') {
  await p.goto(url + '/' + query);
  await p.click('#create');
  await p.waitForSelector('#conn-status[data-state=connected]', { timeout: TIMEOUT });
  return p.evaluate(() => ({ link: document.querySelector('#invite-link').value, code: document.querySelector('#mini-code').textContent.trim() }));
}

/** Joins by the invite link. */
export async function joinByLink(p, link) {
  await p.goto(link);
  await p.waitForSelector('#conn-status[data-state=connected]', { timeout: TIMEOUT });
}

/** Joins by typing the mini code into the start page's field. */
export async function joinByCode(p, url, code) {
  await p.goto(url + '/');
  await p.waitForSelector('#join-input');
  await p.fill('#join-input', code);
  await p.click('#join-button');
  await p.waitForSelector('#conn-status[data-state=connected]', { timeout: TIMEOUT });
}

/** Waits until p shows n other members online. */
export async function waitOnline(p, n) {
  await p.waitFor((n) => document.querySelectorAll('#member-list li:not(.me)[data-online=true]').length === n, n, { timeout: TIMEOUT, what: `${n} members online` });
}

/** Sends text from one page; waits until the server confirmed it there and
 * it shows in every page of to. */
export async function chat(from, to, text) {
  await from.fill('#chat-input', text);
  await from.press('#chat-input', 'Enter');
  await from.waitFor((t) => [...document.querySelectorAll('#feed li.chat.mine:not(.pending) .text')].some((e) => e.textContent === t), text, { timeout: TIMEOUT, what: `own chat "${text}" confirmed` });
  for (const p of to) {
    await p.waitFor((t) => [...document.querySelectorAll('#feed li.chat:not(.mine) .text')].some((e) => e.textContent === t), text, { timeout: TIMEOUT, what: `chat "${text}" shown` });
  }
}

/** Waits for the card of file name (dir 'send' or 'recv') to finish;
 * resolves to its attributes and status (fails on a failed card). */
export async function finishedCard(p, dir, name, { timeout = TIMEOUT } = {}) {
  const card = await p.waitFor(({ dir, name }) => {
    const li = [...document.querySelectorAll(`#feed li.file[data-direction=${dir}]`)].reverse()
      .find((x) => x.querySelector('.file-name')?.textContent === name);
    if (!li || !['done', 'failed'].includes(li.dataset.state)) return null;
    return { id: li.dataset.file, state: li.dataset.state, path: li.dataset.path || '', storage: li.dataset.storage || '', sha256: li.dataset.sha256 || '', status: li.querySelector('.status').textContent.trim() };
  }, { dir, name }, { timeout, interval: 250, what: `${dir} card of ${name} finished` });
  assert(card.state === 'done', `${p.name}: ${dir} ${name}: ${card.state}: ${card.status}`);
  return card;
}

/** Reads a received file back in 4 MiB slices, each hashed by WebCrypto in
 * the page; resolves to {size, slices}. The file is the one the page made
 * of what it stored (OPFS or Blobs), kept for tests in
 * window.__cloakroomReceived (store.js) — set it up with watchReceived()
 * before the file comes. (Not through the card's Save link: the page's CSP
 * refuses a fetch of a blob: URL.) */
export async function readBack(p, fileId) {
  return p.evaluate(async ({ id, slice }) => {
    const f = window.__cloakroomReceived?.get(id);
    if (!f) throw new Error(`file ${id} not in window.__cloakroomReceived (watchReceived() before it came?)`);
    const out = [];
    for (let off = 0; off < f.size; off += slice) {
      const d = new Uint8Array(await crypto.subtle.digest('SHA-256', await f.slice(off, Math.min(f.size, off + slice)).arrayBuffer()));
      out.push([...d].map((x) => x.toString(16).padStart(2, '0')).join(''));
    }
    return { size: f.size, slices: out };
  }, { id: fileId, slice: SLICE });
}

/** Makes the page keep every file it receives from now on for readBack. */
export async function watchReceived(p) {
  await p.evaluate(() => { if (!(window.__cloakroomReceived instanceof Map)) window.__cloakroomReceived = new Map(); });
}

/** Checks a received file against the sender's {sha256, slices}: the hash
 * the page reports and the bytes read back (readBack). */
export async function checkReceivedBytes(p, card, want) {
  assert(card.sha256 === want.sha256, `${p.name}: page sha256 ${card.sha256}, sender ${want.sha256}`);
  const got = await readBack(p, card.id);
  assert(got.slices.length === want.slices.length, `${p.name}: read back ${got.size} bytes: ${got.slices.length} slices, want ${want.slices.length}`);
  const bad = got.slices.findIndex((s, i) => s !== want.slices[i]);
  assert(bad < 0, `${p.name}: the received file differs from the sent file in slice ${bad}`);
}
