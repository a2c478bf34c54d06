// Peer-to-peer file transfer in the browser (web/static/js/p2p.js), every
// assertion on the path the pages report (data-path of the file cards), and
// every received file read back from the receiver's OPFS in slices:
//   - two browser members (UI create/join) on ?transport=auto (the default):
//     a 200 MiB random file over a direct data channel, MB/s logged;
//   - a session broken mid-transfer while the receiver stays online: the
//     sender resumes through the relay, the receiver keeps what it had;
//   - browser <-> Go CLI over P2P, both directions;
//   - a Go sender killed mid-transfer: the page marks the reception failed;
//   - a receiver closed mid-transfer: the sender marks the send failed;
//   - the auto ladder: a receiver whose network passes only the TURN server
//     gets the file over TURN, one with no usable path at all over the relay;
//   - ?transport=turn on both pages: path TURN; ?transport=relay: path relay.
// The 200 MiB file is written and hashed on disk in slices by node and handed
// to the page by path (setInputFiles), never held whole in page memory.
import { join } from 'node:path';
import { mkdirSync, existsSync, readdirSync } from 'node:fs';
import { main, buildBinary, launch, tempDir, run, assert, stopProc } from './lib.mjs';
import {
  MIB, T, startServerWithTURN, recordPeerConnections, countStoreWrites, simulateNetwork, writeRandomFile, hashFile, createAndJoin, waitOnline,
  finishedCard, checkReceived, shownSpeed, waitProgress, tail,
} from './p2plib.mjs';

const BIG = Number(process.env.P2P_BIG_MIB || 200) * MIB;
// P2P_SKIP_CLI=1 runs the page <-> page parts only (while the Go client and the page speak different protocol versions).
const SKIP_CLI = process.env.P2P_SKIP_CLI === '1';

await main('p2p', async () => {
  const bin = buildBinary();
  const srv = await startServerWithTURN(bin);
  const dir = tempDir();

  const ctxA = await launch({ name: 'A' });
  const ctxB = await launch({ name: 'B' });
  await recordPeerConnections(ctxB);
  await countStoreWrites(ctxB);
  const A = ctxA.pages()[0] ?? await ctxA.newPage();
  const B = ctxB.pages()[0] ?? await ctxB.newPage();
  const link = await createAndJoin(srv.url, '', A, [B]);
  await waitOnline(A, 1);
  await waitOnline(B, 1);

  // 1. A big random file A -> B on the default transport (auto): direct.
  {
    const f = join(dir, 'big.bin');
    const want = writeRandomFile(f, BIG + 4321);
    await A.setInputFiles('#file-input', f);
    const rc = await finishedCard(B, 'recv', 'big.bin');
    const sc = await finishedCard(A, 'send', 'big.bin');
    assert(rc.path === 'direct', `receiver reports path ${rc.path}, want direct (${rc.status})`);
    assert(sc.path === 'direct', `sender reports path ${sc.path}, want direct (${sc.status})`);
    await checkReceived(B, rc, want);
    console.log(`p2p: ${(BIG / MIB).toFixed(0)} MiB A -> B over ${rc.path}: receiver ${shownSpeed(rc)}, sender ${shownSpeed(sc)} (${rc.status})`);
  }

  // 2. The data channel breaks mid-transfer while B stays in the room: A
  //    falls back to the relay with the same file id; B keeps the chunks it
  //    has, takes the rest from the relay, and the file verifies.
  {
    const f = join(dir, 'resume.bin');
    const size = 96 * MIB + 99;
    const want = writeRandomFile(f, size);
    await A.setInputFiles('#file-input', f);
    await waitProgress(B, 'resume.bin', 0.05);
    const closed = await B.evaluate(() => { let n = 0; for (const pc of window.__pcs) if (pc.connectionState !== 'closed') { pc.close(); n++; } return n; });
    assert(closed === 1, `closed ${closed} live peer connections in B, want 1`);
    const rc = await finishedCard(B, 'recv', 'resume.bin');
    const sc = await finishedCard(A, 'send', 'resume.bin');
    assert(rc.path === 'relay', `receiver reports path ${rc.path} after the break, want relay`);
    assert(sc.path === 'relay', `sender reports path ${sc.path} after the break, want relay`);
    await checkReceived(B, rc, want);
    // Each chunk was written once: what came over the data channel was kept,
    // the relay filled in the rest (a restart would write early chunks again).
    const writes = await B.evaluate((id) => window.__writes[id], rc.id);
    assert(writes === Math.ceil(size / 64512), `B wrote ${writes} chunks of resume.bin, want ${Math.ceil(size / 64512)}`);
    console.log('p2p: broken session resumed through the relay:', rc.status);
  }

  // 3. Go CLI -> browsers over P2P (both pages receive it directly).
  if (!SKIP_CLI) {
    const f = join(dir, 'from-cli.bin');
    const want = writeRandomFile(f, 24 * MIB + 777);
    const send = run(bin, ['send', '--transport', 'p2p', link, f], { timeoutMs: 120000 });
    const ra = await finishedCard(A, 'recv', 'from-cli.bin');
    const rb = await finishedCard(B, 'recv', 'from-cli.bin');
    const sr = await send.done;
    assert(sr.code === 0, `cloakroom send exit ${sr.code}: ${tail(sr.stderr)}`);
    assert(ra.path === 'direct' && rb.path === 'direct', `CLI -> browser paths ${ra.path}, ${rb.path}, want direct`);
    assert((sr.stderr.match(/from-cli\.bin: delivered to \S+ via direct/g) || []).length === 2, `CLI says: ${tail(sr.stderr)}`);
    await checkReceived(A, ra, want);
    await checkReceived(B, rb, want);
    await waitOnline(A, 1); // the sender has left: the next "2 online" is the recv CLI
    console.log('p2p: CLI -> browser ok:', ra.status);
  }

  // 4. Browser -> Go CLI over P2P.
  if (!SKIP_CLI) {
    const recvDir = join(dir, 'cli-recv');
    mkdirSync(recvDir);
    const recv = run(bin, ['recv', '--new-only', '--transport', 'p2p', '--count', '1', '-o', recvDir, link], { timeoutMs: 120000 });
    await Promise.race([waitOnline(A, 2), recv.done.then((r) => { throw new Error(`cloakroom recv exited early (${r.code}): ${tail(r.stderr)}`); })]);
    const f = join(dir, 'to-cli.bin');
    const want = writeRandomFile(f, 24 * MIB + 4321);
    await A.setInputFiles('#file-input', f);
    const rr = await recv.done;
    assert(rr.code === 0, `cloakroom recv exit ${rr.code}: ${tail(rr.stderr)}`);
    const got = join(recvDir, 'to-cli.bin');
    assert(existsSync(got), `recv wrote ${readdirSync(recvDir)}`);
    assert(hashFile(got) === want.sha256, 'the CLI received the bytes the browser sent');
    const sc = await finishedCard(A, 'send', 'to-cli.bin');
    assert(sc.path === 'direct', `sender reports path ${sc.path} (B and the CLI), want direct`);
    await checkReceived(B, await finishedCard(B, 'recv', 'to-cli.bin'), want);
    await waitOnline(A, 1);
    console.log('p2p: browser -> CLI ok:', sc.status);
  }

  // 5. A Go sender killed mid-transfer: the reception does not hang, it
  //    fails with a message that says what happened.
  if (!SKIP_CLI) {
    const f = join(dir, 'killed.bin');
    writeRandomFile(f, 160 * MIB);
    const send = run(bin, ['send', '--log-level', 'info', '--transport', 'p2p', link, f], { timeoutMs: 120000 });
    // Both receptions under way (A's session may connect after B's): a
    // page the sender never reached has no card to fail.
    await waitProgress(B, 'killed.bin', 0.02);
    await waitProgress(A, 'killed.bin', 0.02).catch((e) => {
      // If the sender's session to A never gets going, say what the sender
      // saw instead of only a timeout.
      throw new Error(`${e.message}\nA never received killed.bin; the sender said:\n${tail(send.stderr)}`);
    });
    // A page whose session connected first may have finished already; every
    // page still receiving at the kill (A at least: it just passed 2%) must fail.
    const cardState = (page) => page.evaluate((name) => [...document.querySelectorAll('#feed li.file[data-direction=recv]')]
      .find((li) => li.querySelector('.file-name')?.textContent === name)?.dataset.state, 'killed.bin');
    const receiving = [];
    for (const [label, page] of [['B', B], ['A', A]]) if ((await cardState(page)) === 'receiving') receiving.push([label, page]);
    send.proc.kill('SIGKILL');
    assert(receiving.length > 0, 'no page was still receiving killed.bin when the sender was killed');
    for (const [label, page] of receiving) {
      const rc = await finishedCard(page, 'recv', 'killed.bin', { allowFail: true });
      assert(rc.state === 'failed', `${label}'s reception after the sender was killed: ${rc.state}: ${rc.status}`);
      assert(/lost mid-transfer/.test(rc.status) && /offline|did not resume/.test(rc.status), `the failure says what happened: ${rc.status}`);
      console.log(`p2p: killed sender -> ${label}:`, rc.status);
    }
    for (const page of [A, B]) await finishedCard(page, 'recv', 'killed.bin', { allowFail: true });
    await stopProc(send.proc);
  }

  // 6. The receiver closes its page mid-transfer: the send does not hang, it
  //    fails and says the member left (transfer_control.mjs: with another
  //    recipient that got it, the card is not failed).
  {
    const f = join(dir, 'vanish.bin');
    writeRandomFile(f, 160 * MIB);
    await A.setInputFiles('#file-input', f);
    await waitProgress(B, 'vanish.bin', 0.02);
    await ctxB.close();
    const sc = await finishedCard(A, 'send', 'vanish.bin', { allowFail: true });
    assert(sc.state === 'failed', `send after the receiver vanished: ${sc.state}: ${sc.status}`);
    assert(/left before it finished/.test(sc.status), `the failure says what happened: ${sc.status}`);
    console.log('p2p: vanished receiver ->', sc.status);
  }

  // 7. The auto ladder, rung by rung: B's network first passes only the TURN
  //    server (direct fails, TURN connects), then nothing (both fail: relay).
  {
    const c1 = await launch({ name: 'L1' });
    const c2 = await launch({ name: 'L2' });
    await simulateNetwork(c2);
    await recordPeerConnections(c2);
    const P1 = c1.pages()[0] ?? await c1.newPage();
    const P2 = c2.pages()[0] ?? await c2.newPage();
    // The ladder itself: relay first off (?relayWait=-1), or a file this
    // small is on the relay before the TURN rung (after direct's 10 s) is up
    // (relay first has webtest/relay_first.mjs and restrictive.mjs).
    await createAndJoin(srv.url, '?relayWait=-1', P1, [P2]);
    await waitOnline(P1, 1);
    for (const [net, want] of [['no-direct', 'TURN'], ['blocked', 'relay']]) {
      // Links stay up between files (docs/PROTOCOL.md): end P2's, so the
      // next file climbs the ladder on the new network.
      await P2.evaluate((n) => { window.__network = n; for (const pc of window.__pcs) pc.close(); }, net);
      await new Promise((r) => setTimeout(r, 1000));
      const name = `ladder-${net}.bin`;
      const f = join(dir, name);
      const w = writeRandomFile(f, 3 * MIB + 5);
      await P1.setInputFiles('#file-input', f);
      const rc = await finishedCard(P2, 'recv', name);
      const sc = await finishedCard(P1, 'send', name);
      assert(rc.path === want && sc.path === want, `auto with a ${net} receiver: paths ${sc.path} -> ${rc.path}, want ${want}`);
      await checkReceived(P2, rc, w);
      console.log(`p2p: auto, ${net} receiver: ${rc.status}`);
    }
    await c1.close();
    await c2.close();
  }

  // 8. ?transport=turn on both pages: relay candidates only, path TURN.
  // 9. ?transport=relay on both pages: the server's relay, path relay.
  for (const [q, want] of [['?transport=turn', 'TURN'], ['?transport=relay', 'relay']]) {
    const c1 = await launch({ name: `${want}1` });
    const c2 = await launch({ name: `${want}2` });
    const P1 = c1.pages()[0] ?? await c1.newPage();
    const P2 = c2.pages()[0] ?? await c2.newPage();
    const roomLink = await createAndJoin(srv.url, q, P1, [P2]);
    await waitOnline(P1, 1);
    const name = `forced-${want}.bin`;
    const f = join(dir, name);
    const w = writeRandomFile(f, 6 * MIB + 3);
    await P1.setInputFiles('#file-input', f);
    const rc = await finishedCard(P2, 'recv', name);
    const sc = await finishedCard(P1, 'send', name);
    assert(rc.path === want && sc.path === want, `${q}: paths ${sc.path} -> ${rc.path}, want ${want}`);
    await checkReceived(P2, rc, w);
    console.log(`p2p: ${q}: ${rc.status}`);
    if (want === 'TURN' && !SKIP_CLI) {
      // Go CLI <-> browser on the TURN rung, both directions.
      const cf = join(dir, 'turn-from-cli.bin');
      const cw = writeRandomFile(cf, 5 * MIB + 1);
      // --log-level info: if a session fails, the failure names the sender's
      // reason instead of waiting 120 s for a card.
      const send = run(bin, ['send', '--log-level', 'info', '--transport', 'turn', roomLink, cf], { timeoutMs: 120000 });
      // A sender that gives up never announces the file to a page: say why
      // instead of waiting for a card that cannot come.
      const gaveUp = send.done.then((r) => new Promise((resolve, reject) => {
        if (r.code !== 0) reject(new Error(`cloakroom send --transport turn exit ${r.code}: ${r.stderr.split("\n").filter((l) => l && !l.includes("\r")).slice(-30).join("\n")}`));
      }));
      const r1 = await Promise.race([finishedCard(P1, 'recv', 'turn-from-cli.bin'), gaveUp]);
      const r2 = await Promise.race([finishedCard(P2, 'recv', 'turn-from-cli.bin'), gaveUp]);
      const sr = await send.done;
      assert(sr.code === 0, `cloakroom send --transport turn exit ${sr.code}: ${tail(sr.stderr)}`);
      assert(r1.path === 'TURN' && r2.path === 'TURN', `CLI -> browser over TURN: paths ${r1.path}, ${r2.path}`);
      assert((sr.stderr.match(/delivered to \S+ via TURN-/g) || []).length === 2, `CLI says: ${tail(sr.stderr)}`);
      await checkReceived(P1, r1, cw);
      await waitOnline(P1, 1); // the sender has left: the next "2 online" is the recv CLI
      const recvDir = join(dir, 'cli-recv-turn');
      mkdirSync(recvDir);
      const recv = run(bin, ['recv', '--new-only', '--transport', 'turn', '--count', '1', '-o', recvDir, roomLink], { timeoutMs: 120000 });
      await waitOnline(P1, 2);
      const tf = join(dir, 'turn-to-cli.bin');
      const tw = writeRandomFile(tf, 5 * MIB + 2);
      await P1.setInputFiles('#file-input', tf);
      const rr = await recv.done;
      assert(rr.code === 0, `cloakroom recv --transport turn exit ${rr.code}: ${tail(rr.stderr)}`);
      assert(hashFile(join(recvDir, 'turn-to-cli.bin')) === tw.sha256, 'the CLI got the bytes over TURN');
      const s2 = await finishedCard(P1, 'send', 'turn-to-cli.bin');
      assert(s2.path === 'TURN', `browser -> CLI over TURN: path ${s2.path}`);
      console.log('p2p: CLI <-> browser over TURN ok');
    }
    for (const c of [c1, c2]) assert(c.errors.length === 0, 'page errors: ' + c.errors.join('; '));
    await c1.close();
    await c2.close();
  }

  assert(ctxA.errors.length === 0, 'page errors: ' + ctxA.errors.join('; '));
});
