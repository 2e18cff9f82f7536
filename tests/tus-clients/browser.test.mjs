// tus-js-client's browser build in Debian's Chromium (playwright-core, as
// the tests of tests/browser): a test page of the same origin as the tus
// endpoint (nginx serves it in front of the server) uploads a file with
// its uploads throttled over the DevTools protocol; mid-upload the network
// is taken offline, then brought back; the upload resumes from the
// server's offset, completes, and the page shows the sha256 of the done
// status. The server's request log says how many body bytes it was sent.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';

import { launch, throttleUploads } from '../browser/lib.mjs';
import { MiB, env, front, idOf, makeFile, scratch, sleep, status } from './lib.mjs';

const SIZE = 24 * MiB + 1000;
const CHUNK = 4 * MiB;
const RATE = 8 * MiB;

/**
 * The bytes of every request of upload `id` in the server's request log
 * (`time host method path status bytes duration id`, the identifier, or
 * the path's last segment in Apache's log, which writes no identifier).
 */
async function bytesSent(log, id) {
  const lines = (await readFile(log, 'utf8')).split('\n').map((line) => line.split(' '));
  const mine = lines.filter((f) => f.length === 8 && (f[7] === id || f[3].endsWith(`/${id}`)));
  return {
    requests: mine.map((f) => `${f[2]} ${f[4]} ${f[5]}`),
    bytes: mine.reduce((sum, f) => sum + Number(f[5]), 0),
  };
}

test('throttled, offline mid-upload, back online: resumed from the offset', async (t) => {
  const f = front();
  const { dir, rm } = await scratch();
  t.after(rm);
  const file = await makeFile(dir, 'offline.bin', SIZE);
  const browser = await launch();
  t.after(() => browser.close());
  const page = await browser.context.newPage();
  const cdp = await throttleUploads(page, RATE);
  const conditions = (offline) =>
    cdp.send('Network.emulateNetworkConditions', {
      offline,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: RATE,
    });
  await page.goto(env('TUS_PAGE') + `&chunk=${CHUNK}`);
  await page.setInputFiles('#file', file.path);

  // Offline once the server has part of the third chunk.
  await page.waitForFunction(() => document.getElementById('url').textContent !== '');
  const id = idOf(await page.textContent('#url'));
  let before = 0;
  const seen = new Set();
  const deadline = Date.now() + 60_000;
  while (before < 2 * CHUNK + MiB) {
    assert.ok(Date.now() < deadline, `no progress past two chunks in 60 s (${before})`);
    const s = await status(f.endpoint, id);
    assert.equal(s.state, 'uploading');
    before = s.received;
    seen.add(before);
    await sleep(20);
  }
  await conditions(true);
  await page.waitForFunction(() => document.getElementById('state').textContent === 'offline');
  // While offline nothing more arrives.
  const cut = (await status(f.endpoint, id)).received;
  await sleep(1500);
  const still = await status(f.endpoint, id);
  assert.equal(still.state, 'uploading');
  assert.equal(still.received, cut, 'bytes arrived while offline');
  assert.ok(cut < SIZE);

  await conditions(false);
  await page.waitForFunction(() => document.getElementById('state').textContent === 'done', null, { timeout: 120_000 });
  assert.equal(await page.textContent('#sha256'), file.sha256, 'the page shows the right sha256');
  const done = await status(f.endpoint, id);
  assert.equal(done.files[0].sha256, file.sha256);
  assert.equal(done.files[0].length, SIZE);

  // From the server's side: every byte came at least once, none twice
  // beyond one chunk.
  const sent = await bytesSent(env('TUS_SERVER_LOG'), id);
  assert.ok(sent.bytes >= SIZE, `${sent.bytes} bytes received for ${SIZE}: ${sent.requests.join(', ')}`);
  assert.ok(sent.bytes <= SIZE + CHUNK, `${sent.bytes} bytes received for ${SIZE}: ${sent.requests.join(', ')}`);
  t.diagnostic(`${f.name}: status showed ${[...seen].join(' ')}; offline at ${cut} of ${SIZE}; the server was sent ${sent.bytes} bytes: ${sent.requests.join(', ')}`);
});
