// The photo viewer: a photo in the feed opens full screen in a modal
// <dialog>, fitted to the screen; Escape, the close button or a click
// closes it. Photos in the feed are reachable by keyboard (Enter or Space).

/** feed: the <ol> of items; dialog: the viewer <dialog> (an <img> and a
 * close button inside). */
export function initViewer(feed, dialog) {
  const img = dialog.querySelector('img');
  const open = (src) => {
    img.src = src.currentSrc || src.src;
    img.alt = src.alt;
    dialog.showModal();
  };
  feed.addEventListener('click', (ev) => {
    const t = ev.target;
    if (t instanceof HTMLImageElement && t.classList.contains('media')) open(t);
  });
  feed.addEventListener('keydown', (ev) => {
    const t = ev.target;
    if ((ev.key === 'Enter' || ev.key === ' ') && t instanceof HTMLImageElement && t.classList.contains('media')) {
      ev.preventDefault();
      open(t);
    }
  });
  // Photos are added to file cards when they arrive: make them focusable.
  new MutationObserver((records) => {
    for (const r of records) {
      for (const n of r.addedNodes) {
        if (n instanceof HTMLImageElement && n.classList.contains('media') && !n.hasAttribute('tabindex')) {
          n.tabIndex = 0;
          n.title = 'Open full screen';
        }
      }
    }
  }).observe(feed, { childList: true, subtree: true });
  dialog.addEventListener('click', (ev) => {
    if (ev.target === dialog || ev.target === img || ev.target.closest('.viewer-close')) dialog.close();
  });
  dialog.addEventListener('close', () => img.removeAttribute('src'));
}
