// Relay first in the page (issue 16; sender.js RelayLeg, docs/PROTOCOL.md
// "Relay first"): a send starts its recipient on the relay store and moves
// to the direct data channel when that connects, mid-file, without sending
// a chunk twice.
//   - The sender page runs with ?relayWait=0 (the relay starts at once; by
//     default it waits 500 ms, by which time a direct channel on loopback is
//     usually up) and the server's relay is slowed to 8 MiB/s per address
//     (--relay-upload-rate-lan), so the direct channel connects while the
//     relay is early in the 32 MiB file.
//   - What the sender puts on each path is counted at the page's own API
//     boundary (init script): binary WebSocket frames to the server (relay
//     chunks) and data channel messages (chunks, control). Both must carry
//     part of the file, and together at most the file plus 1 % (the chunk
//     frames' headers and the control messages are well under that).
//   - The receiver verifies the file (SHA-256 of every slice read back from
//     OPFS), wrote each chunk once, and its card ends on the direct path; the
//     sender's row for it says it moved from the relay.
import { join } from 'node:path';
import { main, buildBinary, launch, tempDir, assert } from './lib.mjs';
import { MIB, startServerWithTURN, countStoreWrites, writeRandomFile, createAndJoin, waitOnline, finishedCard, checkReceived, waitProgress } from './p2plib.mjs';

await main('relay_first', async () => {
  const bin = buildBinary();
  const srv = await startServerWithTURN(bin, ['--relay-upload-rate-lan', '8MiB']);
  const dir = tempDir();
  const ctxA = await launch({ name: 'A' });
  const ctxB = await launch({ name: 'B' });
  await ctxA.addInitScript(() => {
    window.__wire = { ws: 0, dc: 0 };
    const len = (d) => (typeof d === 'string' ? 0 : d.byteLength ?? d.size ?? 0);
    const ws = WebSocket.prototype.send;
    WebSocket.prototype.send = function (d) { window.__wire.ws += len(d); return ws.call(this, d); };
    const dc = RTCDataChannel.prototype.send;
    RTCDataChannel.prototype.send = function (d) { window.__wire.dc += len(d); return dc.call(this, d); };
  });
  await countStoreWrites(ctxB);
  const A = ctxA.pages()[0] ?? await ctxA.newPage();
  const B = ctxB.pages()[0] ?? await ctxB.newPage();
  await createAndJoin(srv.url, '?relayWait=0', A, [B]);
  await waitOnline(A, 1);
  await waitOnline(B, 1);

  const size = 32 * MIB + 321;
  const f = join(dir, 'first.bin');
  const want = writeRandomFile(f, size);
  const t0 = Date.now();
  await A.setInputFiles('#file-input', f);
  await waitProgress(B, 'first.bin', 0.001);
  const firstPath = await B.getAttribute('#feed li.file[data-direction=recv]:has(.file-name:text-is("first.bin"))', 'data-path');
  const rc = await finishedCard(B, 'recv', 'first.bin');
  const sc = await finishedCard(A, 'send', 'first.bin');
  const secs = (Date.now() - t0) / 1000;
  await checkReceived(B, rc, want);
  const wire = await A.evaluate(() => window.__wire);
  const writes = await B.evaluate((id) => window.__writes[id], rc.id);
  const row = await A.textContent('#feed li.file[data-direction=send]:has(.file-name:text-is("first.bin")) li.recipient');
  console.log(`relay_first: 32 MiB in ${secs.toFixed(1)} s; receiver's path first ${firstPath}, at the end ${rc.path}; sender put ${(wire.ws / MIB).toFixed(1)} MiB on the WebSocket, ${(wire.dc / MIB).toFixed(1)} MiB on data channels; sender's row: ${row}`);
  assert(firstPath === 'relay', `the receiver's first path was ${firstPath}, want relay (relayWait=0)`);
  assert(rc.path === 'direct', `the receiver's path at the end is ${rc.path}, want direct (the channel took over)`);
  assert(wire.ws > MIB && wire.dc > 4 * MIB, `both paths carry part of the file: WebSocket ${wire.ws}, data channels ${wire.dc}`);
  assert(wire.ws + wire.dc <= size * 1.01, `the sender put ${wire.ws + wire.dc} bytes on the wire for a ${size}-byte file: more than 1 % again`);
  assert(writes === Math.ceil(size / 64512), `B wrote ${writes} chunks, want ${Math.ceil(size / 64512)}`);
  assert(/Via the room server, then direct/.test(row), `the sender's row does not say it moved: ${row}`);
  assert(sc.state === 'done', `sender card ${sc.state}`);
});
