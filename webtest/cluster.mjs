// Issue 17: a page on cluster node 1 and the Go CLI on node 3 share a room
// through NATS (a real 3-server NATS cluster with JetStream, run by
// cluster/clustertest/natsd). The page sees the CLI online (the presence
// challenge crosses nodes, end to end), chat goes both ways, and a file
// from the page reaches a `cloakroom recv` on node 3 intact.
import { spawn, execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { main, buildBinary, launch, tempDir, run, assert, onCleanup, stopProc, root } from './lib.mjs';
import { MIB, T, startServerWithTURN, writeRandomFile, hashFile, createAndJoin, waitOnline, finishedCard, tail } from './p2plib.mjs';

/** Starts the NATS cluster; resolves to its URLs (comma-separated). */
async function startNATS() {
  const bin = join(tempDir('natsd-'), 'natsd');
  execFileSync('go', ['build', '-o', bin, './cluster/clustertest/natsd'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  const proc = spawn(bin, ['-n', '3'], { stdio: ['pipe', 'pipe', 'inherit'] });
  onCleanup(() => stopProc(proc));
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error('natsd did not start in 60 s: ' + out)), 60000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/nats: (\S+)/);
      if (m) { clearTimeout(t); resolve(m[1]); }
    });
    proc.on('exit', (code) => { clearTimeout(t); reject(new Error(`natsd exited with ${code}: ${out}`)); });
  });
}

await main('cluster', async () => {
  const bin = buildBinary();
  const nats = await startNATS();
  const node1 = await startServerWithTURN(bin, ['--cluster', nats, '--cluster-name', 'node1', '--metrics-addr', '']);
  await startServerWithTURN(bin, ['--cluster', nats, '--cluster-name', 'node2', '--metrics-addr', '']);
  const node3 = await startServerWithTURN(bin, ['--cluster', nats, '--cluster-name', 'node3', '--metrics-addr', '']);
  const dir = tempDir();
  const ctx = await launch({ name: 'A' });
  const A = ctx.pages()[0] ?? await ctx.newPage();
  const link = await createAndJoin(node1.url, '', A, []);
  const on3 = node3.url + '/' + link.slice(link.indexOf('#'));

  const chat = spawn(bin, ['chat', on3], { stdio: ['pipe', 'pipe', 'pipe'] });
  onCleanup(() => stopProc(chat));
  let heard = '', said = '';
  chat.stdout.on('data', (d) => { heard += d; });
  chat.stderr.on('data', (d) => { said += d; });
  await waitOnline(A, 1);
  // Online means the page checked the CLI's answer to its challenge.
  chat.stdin.write('hello from node 3\n');
  await A.waitForFunction(() => [...document.querySelectorAll('#feed li.chat:not(.mine) .text')].some((e) => e.textContent === 'hello from node 3'), null, T);
  await A.fill('#chat-input', 'hello from node 1');
  await A.press('#chat-input', 'Enter');
  const deadline = Date.now() + T.timeout;
  while (!heard.includes('hello from node 1')) {
    assert(Date.now() < deadline, `the CLI on node 3 never printed the page's chat: ${tail(heard)} ${tail(said)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  console.log('cluster: chat both ways between a page on node 1 and the CLI on node 3');
  chat.stdin.end();
  await stopProc(chat);

  const out = join(dir, 'recv-out');
  execFileSync('mkdir', ['-p', out]);
  const recv = run(bin, ['recv', '-o', out, '--count', '1', on3], { timeoutMs: 180000 });
  await Promise.race([waitOnline(A, 1), recv.done.then((r) => { throw new Error(`cloakroom recv exited early (${r.code}): ${tail(r.stderr)}`); })]);
  const f = join(dir, 'from-page.bin');
  const want = writeRandomFile(f, 8 * MIB + 7);
  await A.setInputFiles('#file-input', f);
  const card = await finishedCard(A, 'send', 'from-page.bin');
  const r = await recv.done;
  assert(r.code === 0, `cloakroom recv exit ${r.code}: ${tail(r.stderr)}`);
  assert(hashFile(join(out, 'from-page.bin')) === want.sha256, 'the CLI on node 3 received the bytes the page on node 1 sent');
  assert(ctx.errors.length === 0, 'page errors: ' + ctx.errors.join('; '));
  console.log('cluster: a file from the page on node 1 reached the CLI on node 3:', card.status);
  await ctx.close();
});
