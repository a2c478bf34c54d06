// Member identities (per-session ECDH P-256 keys) and the pairwise channel
// between two members: sealed signals with counter nonces and the key
// confirmation that binds a data channel to both members' keys.
import { b64u, concat, ctEqual, fitsLP, lessUTF8, lp, u64, u8, utf8 } from './bytes.js';
import { GCM_TAG, L, NO_SALT, OpenError, ReplayError, VERSION, gcmKey, gcmOpen, gcmSeal, hkdf, hmacKey, subtle } from './primitives.js';

const ECDH = { name: 'ECDH', namedCurve: 'P-256' };

/** A fresh per-session ECDH P-256 identity: {priv: CryptoKey, pub: 65 bytes}. */
export async function newIdentity() {
  const kp = await subtle.generateKey(ECDH, false, ['deriveBits']);
  const pub = new Uint8Array(await subtle.exportKey('raw', kp.publicKey));
  return { priv: kp.privateKey, pub };
}

/** An identity from a known private scalar (test vectors). */
export async function importIdentity(scalar, pub) {
  const priv = await subtle.importKey('jwk', {
    kty: 'EC', crv: 'P-256', d: b64u(scalar), x: b64u(pub.subarray(1, 33)), y: b64u(pub.subarray(33, 65)),
  }, ECDH, false, ['deriveBits']);
  return { priv, pub: Uint8Array.from(pub) };
}

/** The pairwise channel between this member (self) and a peer: directional
 * signal keys with counter nonces, and key confirmation. Keep exactly one
 * Pair per (own identity, peer id, peer key) for the whole session. */
export class Pair {
  /** @private use newPair */
  constructor(st) { Object.assign(this, st); this.sendCtr = 0n; this.recvMax = 0n; this._recvQueue = Promise.resolve(); }

  _nonceAAD(from, to, c) {
    return {
      nonce: concat(new Uint8Array(4), u64(c)),
      aad: concat(utf8(L.signal), u8(VERSION), this.roomID, lp(from), lp(to), u64(c)),
    };
  }

  /** Seals a signal to the peer with the next counter: u64(c) ‖ ciphertext+tag. */
  async sealSignal(plaintext) {
    if (this.sendCtr === 0xffffffffffffffffn) throw new Error('seal signal: counter exhausted');
    const c = ++this.sendCtr;
    const { nonce, aad } = this._nonceAAD(this.self, this.peer, c);
    return concat(u64(c), await gcmSeal(this._send, nonce, plaintext, aad));
  }

  /** Opens a signal from the peer; tampering (or a signal sealed for
   * another member) gives OpenError, then counters must strictly increase
   * (ReplayError). Calls are serialized. */
  openSignal(sealed) {
    const run = this._recvQueue.then(() => this._open(sealed));
    this._recvQueue = run.catch(() => {});
    return run;
  }

  async _open(sealed) {
    if (!(sealed instanceof Uint8Array) || sealed.length < 8 + GCM_TAG) throw new OpenError('signal too short');
    const c = new DataView(sealed.buffer, sealed.byteOffset, 8).getBigUint64(0);
    // Authenticate first (as Go's Pair.OpenSignal): a signal sealed for
    // someone else, or altered, is an OpenError whatever its counter.
    const { nonce, aad } = this._nonceAAD(this.peer, this.self, c);
    const pt = await gcmOpen(this._recv, nonce, sealed.subarray(8), aad);
    if (c <= this.recvMax) throw new ReplayError();
    this.recvMax = c;
    return pt;
  }

  _confirmInput(offererFP, answererFP, fromOfferer, author, recipient) {
    if (!fitsLP(offererFP, answererFP, author, recipient)) return null;
    return concat(utf8(L.confirm), lp(offererFP), lp(answererFP), u8(fromOfferer ? 1 : 0), lp(author), lp(recipient));
  }

  /** The key-confirmation tag this side sends (fromOfferer: this side is the offerer). */
  async confirm(offererFP, answererFP, fromOfferer) {
    const input = this._confirmInput(offererFP, answererFP, fromOfferer, this.self, this.peer);
    if (!input) return null;
    return new Uint8Array(await subtle.sign('HMAC', this._confirm, input));
  }

  /** Checks the peer's tag (fromOfferer: the peer is the offerer); true when it verifies. */
  async verifyConfirm(offererFP, answererFP, fromOfferer, tag) {
    const input = this._confirmInput(offererFP, answererFP, fromOfferer, this.peer, this.self);
    if (!input || !(tag instanceof Uint8Array) || tag.length !== 32) return false;
    return subtle.verify('HMAC', this._confirm, tag, input);
  }
}

/** Computes the pairwise key HKDF(ECDH(self, peer), salt = PairSalt, info =
 * sorted (id, pub) of both members) and the directional keys. */
export async function newPair(keys, self, ident, peer, peerPub) {
  if (!keys || !ident?.priv) throw new Error('new pair: missing room keys or identity');
  if (!self || !peer) throw new Error('new pair: empty member id');
  if (self === peer) throw new Error('new pair: peer is this member');
  if (!fitsLP(self, peer)) throw new Error('new pair: member id too long');
  if (!(peerPub instanceof Uint8Array) || peerPub.length !== 65 || peerPub[0] !== 4) throw new Error('new pair: invalid peer public key');
  if (ctEqual(peerPub, ident.pub)) throw new Error("new pair: peer announces this member's public key");
  let pk;
  try {
    pk = await subtle.importKey('raw', peerPub, ECDH, false, []);
  } catch {
    throw new Error('new pair: invalid peer public key');
  }
  const shared = new Uint8Array(await subtle.deriveBits({ name: 'ECDH', public: pk }, ident.priv, 256));
  let [idLo, pubLo, idHi, pubHi] = [self, ident.pub, peer, peerPub];
  if (lessUTF8(idHi, idLo)) [idLo, pubLo, idHi, pubHi] = [idHi, pubHi, idLo, pubLo];
  const info = concat(utf8(L.pair), keys.roomID, lp(idLo), lp(pubLo), lp(idHi), lp(pubHi));
  const pairKey = await hkdf(shared, keys.pairSalt, info, 32);
  shared.fill(0);
  const sendKey = await hkdf(pairKey, NO_SALT, concat(utf8(L.signal), lp(self), lp(peer)), 32);
  const recvKey = await hkdf(pairKey, NO_SALT, concat(utf8(L.signal), lp(peer), lp(self)), 32);
  const confirmKey = await hkdf(pairKey, NO_SALT, utf8(L.confirm), 32);
  return new Pair({
    roomID: keys.roomID, self, peer,
    // raw keys kept for the test vectors (not secret from this page anyway)
    pairKey, sendKey, recvKey, confirmKey,
    _send: await gcmKey(sendKey), _recv: await gcmKey(recvKey),
    _confirm: await hmacKey(confirmKey, ['sign', 'verify']),
  });
}
