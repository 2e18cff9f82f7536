// The /iframe page in a real Chromium: the original's transport, where the
// browser posts a plain form into a hidden iframe, the description comes
// back in the data attributes of the HTML answer, and progress by JSONP.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { MiB, env, launch, makeFile, movingValues, progressValues, recordProgress, scratch, throttleUploads } from './lib.mjs';

const BASE = env('FILEUPLOAD_URL');
const SMALL_URL = env('FILEUPLOAD_SMALL_URL');

let browser;
let files;

before(async () => {
  browser = await launch();
  files = await scratch();
});

after(async () => {
  if (browser) await browser.close();
  if (files) await files.rm();
});

// Opens /iframe, recording every JSONP answer and the upload's request.
async function openIframePage(base) {
  const page = await browser.context.newPage();
  const seen = { jsonp: [], uploads: [], problems: [] };
  page.on('pageerror', (e) => seen.problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') seen.problems.push(`console: ${m.text()}`);
  });
  page.on('request', (r) => {
    if (r.method() === 'POST') seen.uploads.push({ request: r, url: r.url(), frame: r.frame().name() });
  });
  page.on('response', async (r) => {
    if (!/\/upload\/status\?.*callback=/.test(r.url())) return;
    try {
      seen.jsonp.push({ type: r.headers()['content-type'], body: await r.text() });
    } catch {
      // A script removed before its body was read: not needed.
    }
  });
  await recordProgress(page);
  await page.goto(base + '/iframe');
  return { page, seen };
}

async function outcome(page, timeout = 300_000) {
  const handle = await page.waitForFunction(
    () => {
      const box = document.getElementById('upload');
      if (!['done', 'error'].includes(box.dataset.state)) return null;
      return {
        state: box.dataset.state,
        status: box.dataset.status || null,
        source: box.dataset.source || null,
        identifier: box.dataset.identifier,
        message: document.getElementById('message').textContent,
      };
    },
    null,
    { timeout, polling: 100 },
  );
  return handle.jsonValue();
}

describe('the iframe page', () => {
  test('posts the form into the iframe, reads the description back, follows progress by JSONP', async () => {
    const file = await makeFile(files.dir, 'through-the-iframe.bin', 24 * MiB);
    const { page, seen } = await openIframePage(BASE);
    try {
      // 24 MiB at 4 MiB/s: about six seconds of JSONP polls.
      await throttleUploads(page, 4 * MiB);
      await page.getByLabel('Files').setInputFiles(file.path);
      await page.getByLabel('Note (optional, sent as a form field)').fill('sent with the form');
      await page.getByRole('button', { name: 'Upload' }).click();

      const ended = await outcome(page);
      assert.equal(ended.state, 'done', JSON.stringify(ended));
      assert.equal(ended.source, 'iframe');

      // The browser posted the form itself, into the iframe, asking for HTML.
      assert.equal(seen.uploads.length, 1, JSON.stringify(seen.uploads));
      const [upload] = seen.uploads;
      assert.equal(upload.frame, 'transport');
      assert.match((await upload.request.allHeaders()).accept, /^text\/html/);
      assert.equal(new URL(upload.url).searchParams.get('X-Progress-ID'), ended.identifier);

      // The description, as read from the iframe's data attributes.
      const frame = page.frame({ name: 'transport' });
      const body = await frame.evaluate(() => ({
        identifier: document.body.dataset.uploadIdentifier,
        info: JSON.parse(document.body.dataset.uploadInfo),
      }));
      assert.equal(body.identifier, ended.identifier);
      assert.equal(body.info.files[0].sha256, file.sha256);
      assert.equal(await page.locator('#description .sha256').innerText(), file.sha256);
      assert.equal(await page.locator('#description .file-name').innerText(), file.name);
      assert.equal(await page.locator('#description .field-value').innerText(), 'sent with the form');
      assert.equal(await page.locator('#description .identifier').innerText(), ended.identifier);

      // Progress came by JSONP: scripts calling back, with uploading states
      // in between, and the bar moved with them.
      const uploading = seen.jsonp.filter((j) => /^\/\*\*\/fileuploadStatus\d+\(\{.*"state":"uploading".*\}\);$/.test(j.body));
      assert.ok(uploading.length >= 2, `JSONP answers while uploading: ${uploading.length} of ${seen.jsonp.length}`);
      for (const j of seen.jsonp) assert.equal(j.type, 'application/javascript');
      const polls = Number(await page.locator('#upload').getAttribute('data-jsonp-polls'));
      assert.ok(polls >= 2, `callbacks run: ${polls}`);
      const moving = movingValues(await progressValues(page, ended.identifier));
      assert.ok(moving.length >= 3, `bar values between 0 and 100: ${JSON.stringify(moving)}`);
      for (let i = 1; i < moving.length; i++) assert.ok(moving[i] > moving[i - 1], JSON.stringify(moving));
      // Every callback was cleaned up after use.
      assert.equal(await page.locator('head script[src*="callback="]').count(), 0);
      assert.deepEqual(seen.problems, []);
    } finally {
      await page.close();
    }
  });

  test('an upload over --max-size shows the 413 message', async () => {
    const file = await makeFile(files.dir, 'too-large-for-the-iframe.bin', 3 * MiB);
    const { page } = await openIframePage(SMALL_URL);
    try {
      await page.getByLabel('Files').setInputFiles(file.path);
      await page.getByRole('button', { name: 'Upload' }).click();
      const ended = await outcome(page);
      assert.equal(ended.state, 'error', JSON.stringify(ended));
      assert.equal(ended.status, '413');
      assert.match(ended.message, /too large/);
      assert.match(ended.message, /1048576.*\(HTTP 413\)\.$/);
    } finally {
      await page.close();
    }
  });
});
