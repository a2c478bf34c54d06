// Files into the room without the paperclip: dropped on the room (with a
// highlight while dragging), pasted (an image from the clipboard), and whole
// folders (picked, or dropped) sent as the files inside, each named by its
// path in the folder ("photos/2024/a.jpg"; the manifest allows a relative
// path, docs/PROTOCOL.md). A file dropped anywhere never makes the browser
// open it in this tab, which would throw the user out of the room.

/** At most this many files from one dropped or picked folder. */
export const MAX_FOLDER_FILES = 1000;

/** A File sent under another name (its path in a folder): sender.js reads sendName. */
function named(file, path) {
  if (path && path !== file.name) file.sendName = path;
  return file;
}

const hasFiles = (dt) => !!dt && [...(dt.types || [])].includes('Files');

/** Window-wide: a drag or drop the page does not take is never the
 * browser's (which would open the file in place of the page). Call once. */
export function guardWindow() {
  for (const type of ['dragover', 'drop']) {
    window.addEventListener(type, (ev) => {
      if (!hasFiles(ev.dataTransfer)) return;
      ev.preventDefault();
      if (type === 'dragover') ev.dataTransfer.dropEffect = 'none';
    });
  }
}

/** Reads all entries of a directory reader (it returns them in batches). */
function readAll(reader) {
  return new Promise((resolve, reject) => {
    const out = [];
    const next = () => reader.readEntries((batch) => {
      if (!batch.length) { resolve(out); return; }
      out.push(...batch);
      next();
    }, reject);
    next();
  });
}

const fileOf = (entry) => new Promise((resolve, reject) => entry.file(resolve, reject));

/** The files under the given FileSystemEntry-like objects (dropped items'
 * webkitGetAsEntry()), walked depth first, each with its path from the
 * dropped item ("photos/2024/a.jpg"); at most max files: {files, truncated}.
 * Entries that cannot be read are skipped. */
export async function walkEntries(entries, max = MAX_FOLDER_FILES) {
  const files = [];
  let truncated = false;
  const visit = async (entry, prefix) => {
    if (files.length >= max) { truncated = true; return; }
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isFile) {
      try { files.push(named(await fileOf(entry), path)); } catch { /* unreadable: skipped */ }
    } else if (entry.isDirectory) {
      let children = [];
      try { children = await readAll(entry.createReader()); } catch { /* unreadable: skipped */ }
      children.sort((a, b) => a.name.localeCompare(b.name));
      for (const c of children) await visit(c, path);
    }
  };
  for (const e of entries) await visit(e, '');
  return { files, truncated };
}

/** The files of a drop: folders walked; plain files as they are. */
async function droppedFiles(dt) {
  const items = [...(dt.items || [])].filter((i) => i.kind === 'file');
  const entries = items.map((i) => (typeof i.webkitGetAsEntry === 'function' ? i.webkitGetAsEntry() : null));
  // Entries must be taken during the event; walk only when there is a folder.
  if (entries.length && entries.every(Boolean) && entries.some((e) => e.isDirectory)) return walkEntries(entries);
  return { files: [...(dt.files || [])], truncated: false };
}

/** The files of a folder picked with <input type=file webkitdirectory>. */
export function folderFiles(input, max = MAX_FOLDER_FILES) {
  const all = [...input.files];
  return { files: all.slice(0, max).map((f) => named(f, f.webkitRelativePath)), truncated: all.length > max };
}

/** Drop and paste into the room. zone: the room view; while it is shown,
 * files dragged anywhere over the window are the room's (data-dragging="true"
 * on zone while dragging: the highlight); send(files) sends them;
 * note(text) tells the user something (a folder cut short). Call before
 * guardWindow(), which refuses what this leaves. */
export function initDrop({ zone, send, note }) {
  let depth = 0; // dragenter/dragleave pairs over the page's elements
  const off = () => { depth = 0; delete zone.dataset.dragging; };
  const ours = (ev) => !zone.hidden && hasFiles(ev.dataTransfer);
  window.addEventListener('dragenter', (ev) => {
    if (!ours(ev)) return;
    ev.preventDefault();
    depth++;
    zone.dataset.dragging = 'true';
  });
  window.addEventListener('dragover', (ev) => {
    if (!ours(ev)) return;
    ev.preventDefault();
    ev.stopImmediatePropagation(); // not refused by guardWindow
    ev.dataTransfer.dropEffect = 'copy';
    zone.dataset.dragging = 'true';
  });
  window.addEventListener('dragleave', () => { if (--depth <= 0) off(); });
  window.addEventListener('drop', async (ev) => {
    if (!ours(ev)) return;
    ev.preventDefault();
    ev.stopImmediatePropagation();
    off();
    const { files, truncated } = await droppedFiles(ev.dataTransfer);
    if (truncated) note(`Only the first ${MAX_FOLDER_FILES} files of the folder are sent.`);
    if (files.length) send(files);
  });
  window.addEventListener('dragend', off);
  // Paste: files (an image copied to the clipboard) are sent; text pastes as text.
  document.addEventListener('paste', (ev) => {
    if (zone.hidden) return;
    const dt = ev.clipboardData;
    const files = [...(dt?.files || [])];
    if (!files.length) return;
    // Text copied from an office program often comes with a picture of it:
    // into a text field, text wins.
    const editable = ev.target instanceof HTMLElement && (ev.target.isContentEditable || /^(INPUT|TEXTAREA)$/.test(ev.target.tagName));
    if (editable && [...dt.types].includes('text/plain') && dt.getData('text/plain')) return;
    ev.preventDefault();
    send(files.map((f, i) => (f.name && f.name !== 'image.png' ? f : named(f, pastedName(f, i)))));
  });
}

/** A name for a pasted image (browsers call them all "image.png"). */
function pastedName(f, i) {
  const ext = (/^image\/(png|jpeg|gif|webp|avif|bmp)$/.exec(f.type)?.[1] || 'png').replace('jpeg', 'jpg');
  const d = new Date();
  const p = (n) => String(n).padStart(2, '0');
  return `Pasted ${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}.${p(d.getMinutes())}.${p(d.getSeconds())}${i ? ` (${i + 1})` : ''}.${ext}`;
}
