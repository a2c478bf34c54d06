// Display names of the members of a room (issue 14, docs/SECURITY.md
// "Staying in the room"): every member has a friendly default name generated from its
// member id (stable, the same on every page), and may choose another one,
// which it sends to each member in a sealed `name` signal
// (docs/PROTOCOL.md). Names are neither unique nor verified: the short id
// stays visible next to them (title attributes).

export const MAX_NAME_CHARS = 40;

const ADJECTIVES = [
  'Amber', 'Brave', 'Calm', 'Clever', 'Cosy', 'Curious', 'Daring', 'Eager',
  'Fancy', 'Gentle', 'Happy', 'Honest', 'Jolly', 'Kind', 'Lively', 'Lucky',
  'Mellow', 'Merry', 'Nimble', 'Noble', 'Patient', 'Polite', 'Quick', 'Quiet',
  'Rapid', 'Shy', 'Silver', 'Sunny', 'Swift', 'Tidy', 'Witty', 'Zesty',
];
const ANIMALS = [
  'Badger', 'Beaver', 'Bison', 'Crane', 'Dolphin', 'Falcon', 'Ferret', 'Finch',
  'Fox', 'Gecko', 'Heron', 'Ibis', 'Koala', 'Lemur', 'Lynx', 'Marten',
  'Moose', 'Newt', 'Otter', 'Owl', 'Panda', 'Puffin', 'Quail', 'Rabbit',
  'Raven', 'Seal', 'Stoat', 'Swan', 'Tapir', 'Turtle', 'Walrus', 'Wombat',
];

/** The short id shown next to a name: the first four hex digits. */
export const shortID = (id) => String(id).slice(0, 4).toUpperCase();

/** The default name of a member: adjective + animal seeded from its id. */
export function defaultName(id) {
  const hex = String(id).replace(/-/g, '');
  const n = parseInt(hex.slice(0, 8), 16) || 0;
  return `${ADJECTIVES[n % ADJECTIVES.length]} ${ANIMALS[Math.floor(n / ADJECTIVES.length) % ANIMALS.length]}`;
}

// Control characters, bidi overrides and isolates, line and paragraph
// separators, zero-width spaces and other invisible format characters
// (but not the zero-width joiner of emoji sequences).
const STRIP = /[\p{Cc}\u200B\u200E\u200F\u202A-\u202E\u2060-\u206F\uFEFF\u2028\u2029]/gu;

/** A name as typed or received, made safe to show: control and bidi
 * characters removed, white space collapsed, at most MAX_NAME_CHARS
 * characters; '' when nothing is left (or when it is not a string). */
export function cleanName(s) {
  if (typeof s !== 'string' || s.length > 4 * MAX_NAME_CHARS + 64) return '';
  const t = s.replace(STRIP, '').replace(/\s+/gu, ' ').trim();
  return [...t].slice(0, MAX_NAME_CHARS).join('').trim();
}

/** The names of one room's members (a page has one room at a time). */
class Names extends EventTarget {
  constructor() {
    super();
    this.self = '';        // this page's member id
    this.own = '';         // the name this member chose ('' = its default)
    this.others = new Map(); // member id -> name it sent
  }

  reset(self, own = '') {
    this.self = self;
    this.own = cleanName(own);
    this.others.clear();
  }

  /** The name a member is shown with. */
  of(id) {
    if (id === this.self) return this.own || defaultName(id);
    return this.others.get(id) || defaultName(id);
  }

  /** A name a member sent (cleaned); returns whether it changed. */
  set(id, name) {
    const n = cleanName(name);
    if (!n || id === this.self || this.others.get(id) === n) return false;
    this.others.set(id, n);
    this.dispatchEvent(new CustomEvent('change', { detail: { member: id } }));
    return true;
  }

  /** This member's own name; returns the name now in use. */
  setOwn(name) {
    const n = cleanName(name);
    this.own = n === defaultName(this.self) ? '' : n;
    this.dispatchEvent(new CustomEvent('change', { detail: { member: this.self } }));
    return this.of(this.self);
  }
}

export const names = new Names();

/** The name a member of the current room is shown with. */
export function displayName(id) { return names.of(id); }
