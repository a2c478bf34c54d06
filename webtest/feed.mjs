// The feed and the composer (issue 14, items 4, 5 and 7), two Chromium
// members over the relay: A at desktop size, B at phone size (390×844).
// - drop: a synthetic DataTransfer drop on the room sends the file (the room
//   highlights while dragging) and the URL stays; a drop on the start page is
//   refused (defaultPrevented: a real browser would open the file in the tab);
// - paste: a ClipboardEvent with an image sends it; a text paste stays text;
// - folders: the path walk over a fake entry tree (bounded), and a drop of a
//   folder whose files arrive named by their paths ("photos/2024/a.jpg");
// - composer: Shift+Enter a new line, Enter sends, the bubble keeps the line
//   break; http(s) URLs become links (noopener), javascript: stays text;
//   consecutive messages are grouped;
// - scrolling at 390×844: at the bottom a new message stays in view above the
//   composer; scrolled up it does not move and "New messages ↓" shows and
//   jumps down; a photo loading at the bottom keeps the bottom in view; the
//   header stays on screen;
// - the photo viewer opens on a click and closes with Escape;
// - accessibility: focus in the composer after create and join, progress bars
//   named after their file, no live region around the feed's progress,
//   presence dots labelled, own-bubble meta contrast ≥ 4.5 light and dark.
// How it was checked to fail: each part was run against the page without its
// feature (drop/paste handlers off, the textarea back to an input, linkify
// off, the scroll-follow of appendItem restored, the old CSS colours): the
// matching assertion failed.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main, buildBinary, startServer, launch, assert, tempDir, ensureOutDir } from './lib.mjs';
import { createAndJoin, waitOnline, finishedCard } from './p2plib.mjs';

const T = { timeout: 60000 };

await main('feed', async () => {
  const bin = buildBinary();
  const srv = await startServer(bin);
  const ctxA = await launch({ name: 'A' });
  const ctxB = await launch({ name: 'B', viewport: { width: 390, height: 844 } });
  const A = ctxA.pages()[0] ?? await ctxA.newPage();
  const B = ctxB.pages()[0] ?? await ctxB.newPage();

  // A drop on the start page is the page's (refused), never the browser's.
  await A.goto(srv.url + '/?transport=relay');
  const startDrop = await A.evaluate(() => {
    const dt = new DataTransfer();
    dt.items.add(new File(['x'], 'stray.txt', { type: 'text/plain' }));
    const over = new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true });
    const drop = new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true });
    document.querySelector('#home').dispatchEvent(over);
    document.querySelector('#home').dispatchEvent(drop);
    return { over: over.defaultPrevented, drop: drop.defaultPrevented };
  });
  assert(startDrop.over && startDrop.drop, `a drop on the start page is not prevented: ${JSON.stringify(startDrop)}`);

  await createAndJoin(srv.url, '?transport=relay', A, [B]);
  await waitOnline(A, 1);
  await waitOnline(B, 1);
  for (const [n, p] of [['A', A], ['B', B]]) {
    const focus = await p.evaluate(() => document.activeElement?.id);
    assert(focus === 'chat-input', `${n}: focus after entering the room is on ${focus}, want chat-input`);
  }
  const urlA = A.url();

  // Composer: Shift+Enter is a new line, Enter sends; the bubble keeps it.
  await A.click('#chat-input');
  await A.keyboard.type('line one');
  await A.keyboard.press('Shift+Enter');
  await A.keyboard.type('line two');
  assert(await A.inputValue('#chat-input') === 'line one\nline two', 'Shift+Enter made a new line');
  const h1 = await A.evaluate(() => document.querySelector('#chat-input').offsetHeight);
  await A.keyboard.press('Enter');
  await B.waitForFunction(() => [...document.querySelectorAll('#feed li.chat:not(.mine) .text')].some((e) => e.textContent === 'line one\nline two'), null, T);
  assert(await A.inputValue('#chat-input') === '', 'Enter sent and emptied the composer');
  const h0 = await A.evaluate(() => document.querySelector('#chat-input').offsetHeight);
  assert(h1 > h0, `the composer grew with two lines (${h1} px) and shrank back (${h0} px)`);
  const lines = await B.evaluate(() => {
    const p = [...document.querySelectorAll('#feed li.chat .text')].find((e) => e.textContent.includes('line two'));
    return { ws: getComputedStyle(p).whiteSpace, h: p.getBoundingClientRect().height, lh: parseFloat(getComputedStyle(p).lineHeight) };
  });
  assert(lines.ws === 'pre-wrap' && lines.h > 1.5 * lines.lh, `the bubble shows two lines: ${JSON.stringify(lines)}`);

  // Links: http(s) only, opened without opener or referrer.
  const linkText = 'see https://example.com/a?b=1. and javascript:alert(1) or (http://example.org/x) ok';
  await sendChat(A, B, linkText);
  const links = await B.evaluate((t) => {
    const p = [...document.querySelectorAll('#feed li.chat .text')].find((e) => e.textContent === t);
    return [...p.querySelectorAll('a')].map((a) => ({ href: a.getAttribute('href'), rel: a.rel, target: a.target, text: a.textContent }));
  }, linkText);
  assert(links.length === 2, `two links, got ${JSON.stringify(links)}`);
  assert(links[0].href === 'https://example.com/a?b=1' && links[0].text === 'https://example.com/a?b=1', `first link ${JSON.stringify(links[0])}`);
  assert(links[1].href === 'http://example.org/x', `second link ${JSON.stringify(links[1])}`);
  assert(links.every((l) => l.rel === 'noopener noreferrer' && l.target === '_blank'), `rel/target ${JSON.stringify(links)}`);

  // Grouping: A's consecutive messages show the name and time once.
  const grouped = await B.evaluate(() => [...document.querySelectorAll('#feed li.chat:not(.mine)')].map((li) => li.classList.contains('grouped')));
  assert(grouped.length === 2 && !grouped[0] && grouped[1], `grouping ${JSON.stringify(grouped)}`);
  const whoShown = await B.evaluate(() => [...document.querySelectorAll('#feed li.chat:not(.mine) .who')].map((w) => w.getBoundingClientRect().width > 2));
  assert(whoShown[0] && !whoShown[1], `name shown once: ${JSON.stringify(whoShown)}`);

  // Drop a file on the room: highlight, then sent; the tab stays.
  const dropped = await A.evaluate(() => {
    const dt = new DataTransfer();
    dt.items.add(new File(['dropped bytes '.repeat(100)], 'dropped.txt', { type: 'text/plain' }));
    const feed = document.querySelector('#feed');
    feed.dispatchEvent(new DragEvent('dragenter', { dataTransfer: dt, bubbles: true, cancelable: true }));
    const over = new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true });
    feed.dispatchEvent(over);
    const hint = document.querySelector('.drop-hint');
    const highlighted = document.querySelector('#room').dataset.dragging === 'true' && getComputedStyle(hint).display !== 'none';
    const drop = new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true });
    feed.dispatchEvent(drop);
    return { highlighted, over: over.defaultPrevented, drop: drop.defaultPrevented, after: document.querySelector('#room').dataset.dragging || '' };
  });
  assert(dropped.highlighted, 'the room is highlighted while files are dragged over it');
  assert(dropped.over && dropped.drop && dropped.after === '', `drop handled: ${JSON.stringify(dropped)}`);
  await finishedCard(A, 'send', 'dropped.txt');
  await finishedCard(B, 'recv', 'dropped.txt');
  assert(A.url() === urlA, `the drop navigated: ${A.url()}`);

  // Paste: text into the composer stays text; an image is sent.
  const textPaste = await A.evaluate(() => {
    const dt = new DataTransfer();
    dt.setData('text/plain', 'pasted words');
    const ev = new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true });
    document.querySelector('#chat-input').dispatchEvent(ev);
    return ev.defaultPrevented;
  });
  assert(!textPaste, 'a text paste was taken from the composer');
  await A.evaluate(async () => {
    const c = document.createElement('canvas');
    c.width = 240; c.height = 720; // a portrait photo
    const g = c.getContext('2d');
    g.fillStyle = '#3a6ea5'; g.fillRect(0, 0, 240, 720);
    g.fillStyle = '#f4c542'; g.fillRect(40, 80, 160, 160);
    const blob = await new Promise((r) => c.toBlob(r, 'image/png'));
    const dt = new DataTransfer();
    dt.items.add(new File([blob], 'image.png', { type: 'image/png' }));
    document.querySelector('#chat-input').focus();
    document.querySelector('#chat-input').dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
  });
  const pastedName = await A.waitForFunction(() => [...document.querySelectorAll('#feed li.file[data-direction=send] .file-name')]
    .map((e) => e.textContent).find((n) => /^Pasted .*\.png$/.test(n)), null, T).then((h) => h.jsonValue());
  await finishedCard(B, 'recv', pastedName);

  // Folders: the walk over an entry tree, in order, bounded.
  const walked = await A.evaluate(async () => {
    const { walkEntries } = await import('/js/drop.js');
    const file = (name) => ({ isFile: true, isDirectory: false, name, file: (ok) => ok(new File([name], name)) });
    const dir = (name, kids) => ({
      isFile: false, isDirectory: true, name,
      createReader() { let done = false; return { readEntries(ok) { const b = done ? [] : kids; done = true; setTimeout(() => ok(b)); } }; },
    });
    const tree = dir('photos', [file('b.txt'), dir('2024', [file('a.jpg'), file('c.jpg')])]);
    const all = await walkEntries([tree]);
    const two = await walkEntries([tree], 2);
    return { all: all.files.map((f) => f.sendName), truncated: all.truncated, two: two.files.length, twoTruncated: two.truncated };
  });
  assert(JSON.stringify(walked.all) === JSON.stringify(['photos/2024/a.jpg', 'photos/2024/c.jpg', 'photos/b.txt']) && !walked.truncated, `walk ${JSON.stringify(walked)}`);
  assert(walked.two === 2 && walked.twoTruncated, `bounded walk ${JSON.stringify(walked)}`);
  // A dropped folder (its items' entries faked: a synthetic DataTransfer has none).
  await A.evaluate(() => {
    const file = (name, body) => ({ isFile: true, isDirectory: false, name, file: (ok) => ok(new File([body], name, { type: 'text/plain' })) });
    const tree = { isFile: false, isDirectory: true, name: 'trip', createReader() { let done = false; return { readEntries(ok) { const b = done ? [] : [file('notes.txt', 'day one'), { isFile: false, isDirectory: true, name: 'day2', createReader() { let d = false; return { readEntries(ok2) { const b2 = d ? [] : [file('plan.txt', 'day two')]; d = true; ok2(b2); } }; } }]; done = true; ok(b); } }; } };
    const dt = { types: ['Files'], files: [], items: [{ kind: 'file', webkitGetAsEntry: () => tree }], dropEffect: 'none' };
    const ev = new DragEvent('drop', { bubbles: true, cancelable: true });
    Object.defineProperty(ev, 'dataTransfer', { value: dt });
    document.querySelector('#feed').dispatchEvent(ev);
  });
  await finishedCard(B, 'recv', 'trip/notes.txt');
  await finishedCard(B, 'recv', 'trip/day2/plan.txt');

  // "Send a folder": the picked folder's files, named by their paths in it.
  const picked = join(tempDir(), 'album');
  mkdirSync(join(picked, 'raw'), { recursive: true });
  writeFileSync(join(picked, 'cover.txt'), 'cover');
  writeFileSync(join(picked, 'raw', 'one.txt'), 'one');
  await A.setInputFiles('#folder-input', picked);
  await finishedCard(B, 'recv', 'album/cover.txt');
  await finishedCard(B, 'recv', 'album/raw/one.txt');

  // Progress bars are named; the feed's updates are not a live region.
  const a11y = await B.evaluate(() => ({
    unlabelled: [...document.querySelectorAll('#feed progress')].filter((p) => !/^Transfer of ./.test(p.getAttribute('aria-label') || '')).length,
    bars: document.querySelectorAll('#feed progress').length,
    liveAroundFeed: !!document.querySelector('#feed').closest('[aria-live]') || !!document.querySelector('#feed [aria-live]'),
    liveWithProgress: document.querySelectorAll('[aria-live] progress, [aria-live] .status, [role=status] progress').length,
    announced: document.querySelector('#chat-announce').textContent,
    status: document.querySelector('#status-announce').textContent,
    dots: [...document.querySelectorAll('#member-list .dot')].map((d) => d.getAttribute('role') === 'img' && d.getAttribute('aria-label')),
  }));
  assert(a11y.bars >= 3 && a11y.unlabelled === 0, `progress labels ${JSON.stringify(a11y)}`);
  assert(!a11y.liveAroundFeed && a11y.liveWithProgress === 0, `live regions ${JSON.stringify(a11y)}`);
  assert(a11y.announced.includes('line one'), `new chat announced: ${a11y.announced}`);
  assert(a11y.status === 'Connected', `status announced: ${a11y.status}`);
  assert(a11y.dots.length === 2 && a11y.dots.every((d) => d === 'online'), `presence labels ${JSON.stringify(a11y.dots)}`);

  // Enough messages that the phone page scrolls.
  for (let i = 1; i <= 14; i++) await A.evaluate((i) => { const x = document.querySelector('#chat-input'); x.value = `filler ${i} `.repeat(6); x.form.requestSubmit(); }, i);
  await B.waitForFunction(() => [...document.querySelectorAll('#feed li.chat .text')].some((e) => e.textContent.startsWith('filler 14 ')), null, T);

  const geo = () => B.evaluate(() => {
    const s = document.scrollingElement;
    const items = document.querySelectorAll('#feed > li');
    const last = items[items.length - 1].getBoundingClientRect();
    return {
      top: s.scrollTop, gap: s.scrollHeight - s.scrollTop - s.clientHeight, lastBottom: last.bottom,
      composerTop: document.querySelector('#composer').getBoundingClientRect().top,
      button: !document.querySelector('#new-messages').hidden,
      headerTop: document.querySelector('.topbar').getBoundingClientRect().top,
      leave: document.querySelector('#leave').getBoundingClientRect().bottom,
    };
  });
  // At the bottom, a new message stays in view above the composer.
  await B.evaluate(() => window.scrollTo(0, document.scrollingElement.scrollHeight));
  await sendChat(A, B, 'at the bottom');
  let g = await geo();
  assert(g.gap < 2, `at the bottom after a new message: ${JSON.stringify(g)}`);
  assert(g.lastBottom <= g.composerTop + 0.5, `the newest message is under the composer: ${JSON.stringify(g)}`);
  assert(g.composerTop < 844 && g.headerTop === 0 && g.leave > 0 && g.leave < 100, `the header stays on screen: ${JSON.stringify(g)}`);
  assert(!g.button, 'no "New messages" button at the bottom');
  // Scrolled up, a new message leaves the reader where they are.
  await B.evaluate(() => window.scrollTo(0, 300));
  await B.waitForTimeout(100);
  await sendChat(A, B, 'while reading history');
  g = await geo();
  assert(g.top === 300, `the reader was moved from 300 to ${g.top}`);
  assert(g.button, 'the "New messages" button shows');
  await B.screenshot({ path: join(ensureOutDir(), 'feed-phone-new-messages.png') });
  // Clicked where it is (Playwright's click would scroll the page first).
  const box = await B.locator('#new-messages').boundingBox();
  assert(box && box.y > 0 && box.y + box.height <= g.composerTop && g.composerTop < 844, `the button sits above the composer: ${JSON.stringify(box)}`);
  await B.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  g = await geo();
  assert(g.gap < 2 && !g.button, `"New messages" jumps to the bottom: ${JSON.stringify(g)}`);

  // A photo that loads at the bottom keeps the bottom in view (both sizes).
  await A.evaluate(() => { const f = document.querySelector('#feed'); f.scrollTop = f.scrollHeight; });
  await A.evaluate(async () => {
    const c = document.createElement('canvas');
    c.width = 400; c.height = 1200;
    const g = c.getContext('2d');
    g.fillStyle = '#a5453a'; g.fillRect(0, 0, 400, 1200);
    const blob = await new Promise((r) => c.toBlob(r, 'image/png'));
    const dt = new DataTransfer();
    dt.items.add(new File([blob], 'tall.png', { type: 'image/png' }));
    document.querySelector('#feed').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  });
  await finishedCard(B, 'recv', 'tall.png');
  for (const [n, p, scroller] of [['B', B, 'document.scrollingElement'], ['A', A, "document.querySelector('#feed')"]]) {
    await p.waitForFunction(() => [...document.querySelectorAll('#feed li.file img.media')].some((i) => i.alt === 'tall.png' && i.complete && i.naturalHeight > 0), null, T);
    // Let layout and the resize observer run.
    await p.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    const gap = await p.evaluate((expr) => { const s = eval(expr); return s.scrollHeight - s.scrollTop - s.clientHeight; }, scroller);
    assert(gap < 2, `${n}: a photo that loaded at the bottom left the bottom ${gap} px away`);
  }
  // Portrait photos do not fill the phone screen.
  const imgH = await B.evaluate(() => [...document.querySelectorAll('#feed img.media')].find((i) => i.alt === 'tall.png').getBoundingClientRect().height);
  assert(imgH <= 844 * 0.55, `a portrait photo is ${imgH} px tall on an 844 px screen`);

  // The photo viewer: a click opens it full screen, Escape closes it.
  await B.click('#feed img.media[alt="tall.png"]');
  await B.waitForSelector('#viewer[open]', T);
  const v = await B.evaluate(() => {
    const i = document.querySelector('#viewer img').getBoundingClientRect();
    return { src: document.querySelector('#viewer img').getAttribute('src'), h: i.height, w: i.width };
  });
  assert(v.src?.startsWith('blob:') && v.h > 600 && v.h <= 844, `viewer image ${JSON.stringify(v)}`);
  await B.screenshot({ path: join(ensureOutDir(), 'feed-phone-viewer.png') });
  await B.keyboard.press('Escape');
  await B.waitForFunction(() => !document.querySelector('#viewer').open && !document.querySelector('#viewer img').hasAttribute('src'), null, T);

  // Own-bubble meta text contrast, light and dark.
  for (const scheme of ['light', 'dark']) {
    await A.emulateMedia({ colorScheme: scheme });
    const c = await A.evaluate(() => {
      const li = document.querySelector('#feed li.chat.mine');
      const rgb = (s) => s.match(/[\d.]+/g).slice(0, 3).map(Number);
      const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
        .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
      const fg = lum(rgb(getComputedStyle(li.querySelector('.meta')).color));
      const bg = lum(rgb(getComputedStyle(li.querySelector('.bubble')).backgroundColor));
      return (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    });
    assert(c >= 4.5, `own-bubble meta contrast ${c.toFixed(2)} in ${scheme}`);
    console.log(`feed: own-bubble meta contrast ${c.toFixed(2)}:1 (${scheme})`);
  }
  await A.emulateMedia({ colorScheme: null });

  // The paperclip shows the keyboard focus of its hidden input.
  await A.focus('#chat-input');
  await A.keyboard.press('Shift+Tab'); // the folder input
  await A.keyboard.press('Shift+Tab'); // the file input
  const ring = await A.evaluate(() => ({ focus: document.activeElement?.id, outline: getComputedStyle(document.querySelector('label[for=file-input]')).outlineStyle }));
  assert(ring.focus === 'file-input' && ring.outline === 'solid', `paperclip focus ${JSON.stringify(ring)}`);

  // Screenshots of a busy room, desktop and phone, light and dark.
  const out = ensureOutDir();
  for (const scheme of ['light', 'dark']) {
    for (const [n, p] of [['desktop', A], ['phone', B]]) {
      await p.emulateMedia({ colorScheme: scheme });
      await p.evaluate(() => { const f = document.querySelector('#feed'); f.scrollTop = f.scrollHeight; window.scrollTo(0, document.scrollingElement.scrollHeight); });
      await p.screenshot({ path: join(out, `feed-${n}-${scheme}.png`) });
    }
  }
  await A.evaluate(() => {
    const dt = new DataTransfer();
    dt.items.add(new File(['x'], 'x.txt'));
    document.querySelector('#feed').dispatchEvent(new DragEvent('dragenter', { dataTransfer: dt, bubbles: true, cancelable: true }));
  });
  await A.screenshot({ path: join(out, 'feed-desktop-dragging.png') });
  await A.evaluate(() => document.querySelector('#feed').dispatchEvent(new DragEvent('dragleave', { bubbles: true })));

  for (const ctx of [ctxA, ctxB]) assert(ctx.errors.length === 0, 'page errors: ' + ctx.errors.join('; '));
  console.log('feed: drop, paste, folders, composer, links, grouping, scrolling, viewer and accessibility ok');
});

async function sendChat(from, to, text) {
  await from.fill('#chat-input', text);
  await from.press('#chat-input', 'Enter');
  await to.waitForFunction((t) => [...document.querySelectorAll('#feed li.chat:not(.mine) .text')].some((e) => e.textContent === t), text, T);
}
