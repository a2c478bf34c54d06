// What this browser can do that the room's paths depend on, detected once
// (docs/BROWSERS.md). A page without RTCPeerConnection (Debian's WebKitGTK,
// browsers with WebRTC turned off) cannot make peer-to-peer sessions: its
// transport 'auto' becomes 'relay', so it never offers one, and it declines
// the offers of other members at once with a reason that says why — their
// ladder (direct, then TURN) ends in two signal round trips and sends
// through the server's relay instead.
import { Transport } from './protocol.js';

/** Whether this page can make WebRTC data channels. */
export const hasWebRTC = typeof globalThis.RTCPeerConnection === 'function';

/** Why a page without WebRTC declines an offer (shown to the offerer's logs). */
export const NO_WEBRTC = 'the receiver\'s browser has no WebRTC (RTCPeerConnection)';

/** The transport this page can use for the one asked for: 'auto' without
 * WebRTC is the relay; a forced peer-to-peer transport without WebRTC is
 * an error the user sees. */
export function usableTransport(transport) {
  if (hasWebRTC || transport === Transport.RELAY) return transport;
  if (transport === Transport.AUTO) return Transport.RELAY;
  throw new Error(`transport ${transport} needs WebRTC, which this browser does not have: use the relay (leave out ?transport=, or ?transport=relay)`);
}
