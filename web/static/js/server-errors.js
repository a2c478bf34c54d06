// What the server's error codes (docs/PROTOCOL.md) mean to users, and which
// of them end the room for good.

export const LOST = 'the connection to the server was lost';

/** Codes after which this member cannot stay in the room. */
export const FATAL_CODES = new Set(['bad_verifier', 'version', 'member_taken', 'room_full', 'too_many']);

/** Codes that refuse a new connection for good (the others: try again later). */
export const REFUSED_CODES = new Set(['bad_verifier', 'version', 'member_taken']);

export const ERROR_TEXT = {
  bad_verifier: 'the server refused the room key (wrong link?)',
  version: 'the server speaks another protocol version; reload the page',
  member_taken: 'this member id is in use elsewhere',
  room_full: 'the room is full; try again later',
  too_many: 'the server is busy or has too many connections from your network; try again later',
  relay_full: 'the relay is full; try again later',
  rate_limited: 'too many requests from your network; slow down and try again',
  too_large: 'too large for the server',
  going_away: 'the server is restarting',
};
