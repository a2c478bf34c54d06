// The feed as the reader sees it: it follows new items only while the reader
// is at the bottom ("New messages ↓" otherwise), also when a photo or video
// above grows later; consecutive messages of one member are grouped; links
// in messages are clickable (http and https only, built as DOM, never HTML);
// the multi-line composer; and what screen readers hear: new chat from
// others (the feed itself is not a live region, so progress is not read out)
// and connection changes, once each.

const NEAR = 48; // px from the bottom that still counts as "at the bottom"
const GROUP_MS = 5 * 60 * 1000; // messages of one member closer than this share a name and time
const ANNOUNCED = 3; // chat lines kept in the announcer

/** The feed: where items go, and the scroll that follows them. */
export class FeedView {
  /** feed: the <ol>; empty: the "no messages yet" line; button: the "New
   * messages ↓" button; announcer: a polite live region for new chat. */
  constructor({ feed, empty, button, announcer }) {
    Object.assign(this, { feed, empty, button, announcer });
    this.stuck = true; // the reader is at the bottom: new items scroll into view
    let lastTop = 0;
    const onScroll = () => {
      // Only the reader scrolling up lets go of the bottom: a scroll by the
      // browser keeping an item above in place (scroll anchoring) does not.
      const top = this.scroller.scrollTop;
      if (this.atBottom()) this.stuck = true;
      else if (top < lastTop) this.stuck = false;
      lastTop = top;
      if (this.stuck) this.button.hidden = true;
    };
    feed.addEventListener('scroll', onScroll, { passive: true });
    window.addEventListener('scroll', onScroll, { passive: true });
    // Items that grow later (a photo decoded, a video's first frame, a
    // status line wrapping): keep the bottom in view when it was.
    this.resize = new ResizeObserver(() => { if (this.stuck) this.scrollToBottom(); });
    const keep = () => { if (this.stuck) this.scrollToBottom(); };
    window.addEventListener('resize', keep);
    window.visualViewport?.addEventListener('resize', keep); // a phone's keyboard
    // Progress bars added to a card later (per recipient, a retry) are named too.
    new MutationObserver((records) => {
      for (const r of records) {
        for (const n of r.addedNodes) {
          if (n instanceof Element && (n.matches('progress') || n.querySelector('progress'))) labelProgress(n.closest('li.item') || n);
        }
      }
    }).observe(feed, { childList: true, subtree: true });
    button.addEventListener('click', () => { this.scrollToBottom(); this.stuck = true; button.hidden = true; });
  }

  /** What scrolls: the feed on wide screens, the whole page on phones. */
  get scroller() {
    return getComputedStyle(this.feed).overflowY === 'visible' ? document.scrollingElement : this.feed;
  }

  atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR;
  }

  scrollToBottom() {
    const s = this.scroller;
    s.scrollTop = s.scrollHeight;
  }

  /** Adds li at the end (or before ref); follows it when the reader was at
   * the bottom or it is ours, else offers the jump down. */
  add(li, ref = null) {
    const follow = this.stuck || this.atBottom() || (li.classList.contains('mine') && !ref);
    if (ref) ref.before(li); else this.feed.append(li);
    this.empty.hidden = true;
    group(li);
    group(li.nextElementSibling);
    labelProgress(li);
    this.resize.observe(li);
    if (follow) {
      this.stuck = true;
      this.scrollToBottom();
      this.button.hidden = true;
    } else if (!ref) {
      this.button.hidden = false;
    }
  }

  /** Says a new chat line to screen readers (politely, once). */
  announce(text) {
    const a = this.announcer;
    a.append(Object.assign(document.createElement('p'), { textContent: text }));
    while (a.childElementCount > ANNOUNCED) a.firstElementChild.remove();
  }
}

/** Hides the name and time of a chat that follows one from the same member
 * within a few minutes (still read by screen readers). */
function group(li) {
  if (!li?.classList?.contains('chat')) return;
  const prev = li.previousElementSibling;
  const same = !!prev && prev.classList.contains('chat') && prev.dataset.from === li.dataset.from &&
    Math.abs(Number(li.dataset.ts) - Number(prev.dataset.ts)) < GROUP_MS;
  li.classList.toggle('grouped', same);
}

/** A file card's progress bar is named after its file. */
function labelProgress(li) {
  const name = li.querySelector?.('.file-name')?.textContent;
  for (const p of li.querySelectorAll('progress:not([aria-label])')) {
    p.setAttribute('aria-label', name ? `Transfer of ${name}` : 'Transfer');
  }
}

const URL_RE = /https?:\/\/[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?'"»\]}]$/;

/** The text of a message as nodes: http(s) URLs become links that open in a
 * new tab without a referrer or an opener; everything else stays text. */
export function linkify(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    // Not a scheme glued to a word ("xhttps://…").
    if (m.index > 0 && /[\p{L}\p{N}]/u.test(text[m.index - 1])) continue;
    let s = m[0];
    for (;;) {
      if (TRAILING.test(s)) { s = s.slice(0, -1); continue; }
      // A closing parenthesis is the URL's only when it opened one.
      if (s.endsWith(')') && count(s, '(') < count(s, ')')) { s = s.slice(0, -1); continue; }
      break;
    }
    let href = '';
    try {
      const u = new URL(s);
      if ((u.protocol === 'http:' || u.protocol === 'https:') && u.hostname) href = u.href;
    } catch { /* not a URL: stays text */ }
    if (!href) continue;
    if (m.index > last) out.push(text.slice(last, m.index));
    const a = document.createElement('a');
    a.href = href;
    a.rel = 'noopener noreferrer';
    a.target = '_blank';
    a.textContent = s;
    out.push(a);
    last = m.index + s.length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

const count = (s, c) => s.split(c).length - 1;

/** The composer: a text area that grows to a few lines (its CSS
 * max-height); Enter sends, Shift+Enter starts a new line. */
export function initComposer(form, input) {
  input.addEventListener('input', () => fitComposer(input));
  input.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Enter' || ev.shiftKey || ev.altKey || ev.ctrlKey || ev.metaKey || ev.isComposing || ev.keyCode === 229) return;
    ev.preventDefault();
    form.requestSubmit();
  });
}

/** Sizes the composer to its text (call after setting its value). */
export function fitComposer(input) {
  input.style.height = 'auto';
  input.style.height = `${input.scrollHeight + input.offsetHeight - input.clientHeight}px`;
}

let lastStatus = '';
/** Connection status for screen readers: said when it changes, not on
 * every repaint. region: a visually hidden role=status element. */
export function announceStatus(region, text) {
  if (text === lastStatus) return;
  lastStatus = text;
  region.textContent = text;
}

/** Presence is more than a colour: each member's dot gets its words
 * (from its title) as an image label; the CSS draws offline as a ring. */
export function labelPresence(list) {
  const label = () => {
    for (const d of list.querySelectorAll('.dot')) {
      const t = d.getAttribute('title') || (d.classList.contains('online') ? 'online' : 'offline');
      if (d.getAttribute('aria-label') !== t) { d.setAttribute('role', 'img'); d.setAttribute('aria-label', t); }
    }
  };
  new MutationObserver(label).observe(list, { childList: true });
  label();
}
