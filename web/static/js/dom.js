// The one element builder of the page: attributes and text only, never
// markup (the CSP forbids inline code, and remote text must stay text).

/** el('li', {class, dataset, text, ...attributes}, ...children): null children are skipped. */
export function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}
