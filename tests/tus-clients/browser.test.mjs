// tus-js-client's browser build in Debian's Chromium (playwright-core, as
// the tests of tests/browser): a test page of the same origin as the tus
// endpoint (the web server in front of it serves the page) uploads a file
// with its uploads throttled over the DevTools protocol; mid-upload the
// network is taken offline, then brought back (or the upload is paused
// mid-PATCH, then resumed); the upload resumes from the server's offset,
// completes, and the page shows the sha256 of the done status. The
// server's request log says how many body bytes it was sent.
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

/**
 * The page with its uploads throttled, a random file chosen in it; resolves
 * once the server's status shows part of the third chunk received (at
 * least 2 chunks and 1 MiB; `midChunk`: and not at a chunk's end).
 */
async function uploadUntilThirdChunk(t, name, midChunk) {
  const f = front();
  const { dir, rm } = await scratch();
  t.after(rm);
  const file = await makeFile(dir, name, SIZE);
  const browser = await launch();
  t.after(() => browser.close());
  const page = await browser.context.newPage();
  const cdp = await throttleUploads(page, RATE);
  await page.goto(env('TUS_PAGE') + `&chunk=${CHUNK}`);
  await page.setInputFiles('#file', file.path);
  await page.waitForFunction(() => document.getElementById('url').textContent !== '');
  const id = idOf(await page.textContent('#url'));
  const seen = [];
  const deadline = Date.now() + 60_000;
  for (;;) {
    assert.ok(Date.now() < deadline, `no progress past two chunks in 60 s (${seen.at(-1)})`);
    const s = await status(f.endpoint, id);
    assert.equal(s.state, 'uploading');
    if (seen.at(-1) !== s.received) seen.push(s.received);
    if (s.received >= 2 * CHUNK + MiB && !(midChunk && s.received % CHUNK === 0)) break;
    await sleep(10);
  }
  return { f, file, page, cdp, id, seen };
}

/**
 * Once the server has recorded the end of the request that was cut (its
 * status publishes progress every 1 MiB or 250 ms, and the rest when the
 * request ends: the same for 1 s), nothing more arrives for 1.5 s. The
 * bytes the server holds.
 */
async function stillFor(endpoint, id) {
  let cut = (await status(endpoint, id)).received;
  for (let same = 0, tries = 0; same < 4; tries++) {
    assert.ok(tries < 40, `the status still moves 10 s after the stop (${cut})`);
    await sleep(250);
    const now = (await status(endpoint, id)).received;
    same = now === cut ? same + 1 : 0;
    cut = now;
  }
  await sleep(1500);
  const still = await status(endpoint, id);
  assert.equal(still.state, 'uploading');
  assert.equal(still.received, cut, 'bytes arrived while stopped');
  assert.ok(cut < SIZE);
  return cut;
}

/**
 * The page says done with the source's sha256, and so does the status;
 * the server received every byte at least once and none twice beyond one
 * chunk (its request log). Returns what the log says.
 */
async function doneOnce(page, f, file, id) {
  await page.waitForFunction(() => document.getElementById('state').textContent === 'done', null, { timeout: 120_000 });
  assert.equal(await page.textContent('#sha256'), file.sha256, 'the page shows the right sha256');
  const done = await status(f.endpoint, id);
  assert.equal(done.files[0].sha256, file.sha256);
  assert.equal(done.files[0].length, SIZE);
  const sent = await bytesSent(env('TUS_SERVER_LOG'), id);
  const said = `${sent.bytes} bytes received for ${SIZE}: ${sent.requests.join(', ')}`;
  assert.ok(sent.bytes >= SIZE, said);
  assert.ok(sent.bytes <= SIZE + CHUNK, said);
  return said;
}

test('throttled, offline mid-upload, back online: resumed from the offset', async (t) => {
  const { f, file, page, cdp, id, seen } = await uploadUntilThirdChunk(t, 'offline.bin', false);
  const conditions = (offline) =>
    cdp.send('Network.emulateNetworkConditions', { offline, latency: 0, downloadThroughput: -1, uploadThroughput: RATE });
  await conditions(true);
  // A request fails while offline: the page waits for the network.
  await page.waitForFunction(() => document.getElementById('state').textContent === 'offline');
  const cut = await stillFor(f.endpoint, id);
  await conditions(false);
  const said = await doneOnce(page, f, file, id);
  t.diagnostic(`${f.name}: status showed ${seen.join(' ')}; offline, the server held ${cut}; ${said}`);
});

test('throttled, paused mid-PATCH (abort), resumed: from the offset the server kept', async (t) => {
  const { f, file, page, id, seen } = await uploadUntilThirdChunk(t, 'paused.bin', true);
  await page.click('#pause');
  const cut = await stillFor(f.endpoint, id);
  await page.click('#resume');
  const said = await doneOnce(page, f, file, id);
  t.diagnostic(`${f.name}: status showed ${seen.join(' ')}; paused, the server held ${cut}; ${said}`);
});
