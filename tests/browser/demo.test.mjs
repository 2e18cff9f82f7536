// The demo page at / in a real Chromium against a real daemon: a large
// throttled upload watched bar by bar, two uploads at once, a dropped
// file, the size limit, an interrupted upload, and a mid-upload screenshot.
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import {
  MiB,
  env,
  fileSha256,
  fileupload,
  getJson,
  launch,
  makeFile,
  measurePng,
  movingValues,
  progressValues,
  recordProgress,
  scratch,
  sha256,
  slowUpload,
  throttleUploads,
} from './lib.mjs';

const BASE = env('FILEUPLOAD_URL');
const SMALL_URL = env('FILEUPLOAD_SMALL_URL');
const DOOMED_URL = env('FILEUPLOAD_DOOMED_URL');
const DOOMED_PID = Number(env('FILEUPLOAD_DOOMED_PID'));
const POOL = env('FILEUPLOAD_POOL');
const DOOMED_POOL = env('FILEUPLOAD_DOOMED_POOL');
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ARTIFACTS = join(ROOT, 'target', 'browser');

let browser;
let files;

before(async () => {
  browser = await launch();
  files = await scratch();
  await mkdir(ARTIFACTS, { recursive: true });
});

after(async () => {
  if (browser) await browser.close();
  if (files) await files.rm();
});

async function openDemo(base) {
  const page = await browser.context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  await recordProgress(page);
  await page.goto(base + '/');
  return { page, problems };
}

// One upload item of the page, by the file's name.
function item(page, name) {
  return page.locator('li.upload', { has: page.locator('.upload-name', { hasText: name }) });
}

// Waits until the upload of `name` has ended (done, error or cancelled)
// and returns how: its state, HTTP status and message.
async function outcome(page, name, timeout = 300_000) {
  const handle = await page.waitForFunction(
    (n) => {
      const li = [...document.querySelectorAll('li.upload')].find(
        (l) => l.querySelector('.upload-name').textContent === n,
      );
      if (!li || !['done', 'error', 'cancelled'].includes(li.dataset.state)) return null;
      return {
        state: li.dataset.state,
        status: li.dataset.status || null,
        message: li.querySelector('.upload-message').textContent,
      };
    },
    name,
    { timeout, polling: 100 },
  );
  return handle.jsonValue();
}

async function description(upload) {
  return {
    identifier: await upload.getAttribute('data-identifier'),
    name: await upload.locator('.file-name').innerText(),
    length: await upload.locator('.file-length').innerText(),
    sha256: await upload.locator('.sha256').innerText(),
  };
}

describe('the demo page', () => {
  test('is accessible by its labels and landmarks', async () => {
    const { page, problems } = await openDemo(BASE);
    try {
      // The file input is reached through its label (the drop zone).
      await page.getByLabel('Drop files here or choose files').waitFor({ state: 'attached' });
      assert.equal(await page.locator('#files').getAttribute('type'), 'file');
      assert.equal(await page.locator('#files').evaluate((e) => e.multiple), true);
      // Keyboard: Tab from the start of the page lands on the file input.
      await page.keyboard.press('Tab');
      assert.equal(await page.evaluate(() => document.activeElement.id), 'files');
      await page.getByRole('heading', { name: 'Uploads' }).waitFor();
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  });

  test('a 64 MiB throttled upload: the bar rises, then the right sha256', async () => {
    const big = await makeFile(files.dir, 'sixty-four.bin', 64 * MiB);
    const { page, problems } = await openDemo(BASE);
    try {
      // 64 MiB at 8 MiB/s: about eight seconds, dozens of polls.
      await throttleUploads(page, 8 * MiB);
      await page.setInputFiles('#files', big.path);
      const upload = item(page, big.name);
      const identifier = await upload.getAttribute('data-identifier');
      assert.match(identifier, /^[0-9a-f]{32}$/);
      assert.equal(await upload.locator('progress').count(), 1);

      // Mid-upload, once speed and time left are known: the screenshot.
      await page.waitForFunction(
        (id) => {
          const li = document.querySelector(`li[data-identifier="${id}"]`);
          const bar = li.querySelector('progress');
          return (
            li.dataset.state === 'uploading' &&
            bar.value >= 30 &&
            bar.value <= 90 &&
            li.querySelector('.upload-speed').textContent.endsWith('/s') &&
            li.querySelector('.upload-eta').textContent.endsWith('left')
          );
        },
        identifier,
        { polling: 50 },
      );
      const shot = join(ARTIFACTS, 'demo-uploading.png');
      const png = await page.screenshot({ path: shot });
      const measured = await measurePng(browser.context, png);
      assert.ok(png.length > 10_000, `screenshot of ${png.length} bytes`);
      assert.ok(measured.colours >= 16, `screenshot has ${measured.colours} colours`);
      assert.ok(measured.stddev > 5, `screenshot luminance deviation ${measured.stddev}`);
      if (process.env.FILEUPLOAD_DOCS_SCREENSHOT) {
        await copyFile(shot, process.env.FILEUPLOAD_DOCS_SCREENSHOT);
      }

      assert.equal((await outcome(page, big.name)).state, 'done');
      const moving = movingValues(await progressValues(page, identifier));
      assert.ok(moving.length >= 3, `bar values between 0 and 100: ${JSON.stringify(moving)}`);
      for (let i = 1; i < moving.length; i++) {
        assert.ok(moving[i] > moving[i - 1], `the bar went back: ${JSON.stringify(moving)}`);
      }
      assert.equal(await upload.locator('progress').evaluate((b) => b.value), 100);

      const shown = await description(upload);
      assert.equal(shown.sha256, big.sha256);
      assert.equal(shown.name, big.name);
      assert.match(shown.length, new RegExp(`\\(${big.size} bytes\\)`));
      assert.equal(await upload.locator('.identifier').innerText(), identifier);
      // What the page showed is what the server stored.
      const stored = (await fileupload('--directory', POOL, 'path', identifier)).trim();
      assert.equal(await fileSha256(stored), big.sha256);
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  });

  test('a screenshot of an empty page is judged blank', async () => {
    // The check above must be able to fail.
    const page = await browser.context.newPage();
    try {
      const measured = await measurePng(browser.context, await page.screenshot());
      assert.ok(measured.colours < 16 && measured.stddev <= 5, JSON.stringify(measured));
    } finally {
      await page.close();
    }
  });

  test('two files at once: two bars, both done, both described', async () => {
    const one = await makeFile(files.dir, 'first.bin', 3 * MiB + 17);
    const two = await makeFile(files.dir, 'second.bin', 5 * MiB + 3);
    const { page, problems } = await openDemo(BASE);
    try {
      await throttleUploads(page, 4 * MiB);
      await page.setInputFiles('#files', [one.path, two.path]);
      assert.equal(await page.locator('li.upload progress').count(), 2);
      const ids = await page.locator('li.upload').evaluateAll((lis) => lis.map((li) => li.dataset.identifier));
      assert.equal(new Set(ids).size, 2, `identifiers ${ids}`);
      for (const file of [one, two]) {
        const upload = item(page, file.name);
        assert.equal((await outcome(page, file.name)).state, 'done');
        const shown = await description(upload);
        assert.equal(shown.name, file.name);
        assert.equal(shown.sha256, file.sha256);
        assert.match(shown.length, new RegExp(`\\(${file.size} bytes\\)`));
        assert.equal(await upload.locator('progress').evaluate((b) => b.value), 100);
        const status = await getJson(`${BASE}/upload/status?X-Progress-ID=${shown.identifier}`);
        assert.equal(status.json.files[0].sha256, file.sha256);
      }
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  });

  test('a file dropped on the drop zone is uploaded', async () => {
    const { page, problems } = await openDemo(BASE);
    try {
      const text = 'dropped on the zone\n'.repeat(5000);
      await page.locator('#drop').evaluate((zone, content) => {
        const data = new DataTransfer();
        data.items.add(new File([content], 'dropped.txt', { type: 'text/plain' }));
        zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: data, bubbles: true, cancelable: true }));
        zone.dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
      }, text);
      const upload = item(page, 'dropped.txt');
      assert.equal((await outcome(page, 'dropped.txt')).state, 'done');
      assert.equal(await upload.locator('.sha256').innerText(), sha256(text));
      assert.equal(await upload.locator('.file-type').innerText(), 'text/plain');
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  });

  test('an upload over --max-size shows the 413 message', async () => {
    const large = await makeFile(files.dir, 'too-large.bin', 3 * MiB);
    const { page } = await openDemo(SMALL_URL);
    try {
      await page.setInputFiles('#files', large.path);
      const upload = item(page, large.name);
      const ended = await outcome(page, large.name);
      assert.equal(ended.state, 'error', JSON.stringify(ended));
      assert.equal(ended.status, '413');
      const message = upload.locator('.upload-message');
      assert.equal(await message.isVisible(), true);
      assert.equal(await message.getAttribute('role'), 'alert');
      const text = await message.innerText();
      assert.match(text, /too large/);
      assert.match(text, /HTTP 413/);
      // The server's own words come through.
      assert.match(text, /1048576/);
    } finally {
      await page.close();
    }
  });

  test('the JavaScript client of docs/browser.md works as written', async () => {
    const markdown = await readFile(join(ROOT, 'docs', 'browser.md'), 'utf8');
    const code = markdown.match(/```js\n([\s\S]*?)```/)[1];
    const size = 6 * MiB;
    // The same bytes as the page makes below: i mod 251.
    const expected = sha256(Buffer.from(Array.from({ length: size }, (_, i) => i % 251)));
    const { page, problems } = await openDemo(BASE);
    try {
      await throttleUploads(page, 2 * MiB);
      // Evaluated through the DevTools protocol, which the page's policy
      // does not govern, as if it were one of the page's own scripts.
      const result = await page.evaluate(`(async () => {
        ${code}
        const bytes = new Uint8Array(${size}).map((_, i) => i % 251);
        const fractions = [];
        const description = await upload(new File([bytes], 'from-the-docs.bin'), (f) => fractions.push(f));
        return { description, fractions };
      })()`);
      assert.equal(result.description.state, 'done');
      assert.equal(result.description.files[0].filename, 'from-the-docs.bin');
      assert.equal(result.description.files[0].sha256, expected);
      const between = result.fractions.filter((f) => f > 0 && f < 1);
      assert.ok(between.length >= 1, `progress reported: ${JSON.stringify(result.fractions)}`);
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  });

  test('an identifier already uploading elsewhere shows the 409 message', async () => {
    // The page mints identifiers from crypto.getRandomValues: made constant
    // here, its next identifier is known, and another client takes it first.
    const id = 'ab'.repeat(16);
    const other = slowUpload(BASE, id, 4 * MiB);
    const page = await browser.context.newPage();
    try {
      await other.send(MiB);
      await page.addInitScript(() => {
        crypto.getRandomValues = (bytes) => bytes.fill(0xab);
      });
      await page.goto(BASE + '/');
      await page.setInputFiles('#files', {
        name: 'second-comer.txt',
        mimeType: 'text/plain',
        buffer: Buffer.from('too late\n'),
      });
      const ended = await outcome(page, 'second-comer.txt');
      assert.equal(ended.state, 'error', JSON.stringify(ended));
      assert.equal(ended.status, '409');
      assert.match(ended.message, /^Another upload with the same identifier is in progress.*\(HTTP 409\)\.$/);
    } finally {
      await page.close();
      const answer = await other.finish();
      assert.equal(answer.status, 201, answer.body);
    }
  });

  test('cancel stops the upload and clears it on the server', async () => {
    const file = await makeFile(files.dir, 'cancelled.bin', 32 * MiB);
    const { page } = await openDemo(BASE);
    try {
      await throttleUploads(page, 2 * MiB);
      await page.setInputFiles('#files', file.path);
      const upload = item(page, file.name);
      const identifier = await upload.getAttribute('data-identifier');
      await page.waitForFunction(
        (id) => document.querySelector(`li[data-identifier="${id}"] progress`).value > 0,
        identifier,
      );
      // With the keyboard, as anyone who cannot use a mouse would.
      await upload.getByRole('button', { name: `Cancel the upload of ${file.name}` }).focus();
      await page.keyboard.press('Enter');
      assert.equal((await outcome(page, file.name)).state, 'cancelled');
      assert.equal(await upload.locator('.upload-message').innerText(), 'Cancelled.');
      // The server lets go of it: no longer uploading, nothing kept. An
      // abort alone would leave state error; the clear leaves no bucket,
      // whose status is `starting`.
      let status;
      for (let i = 0; i < 200; i++) {
        status = (await getJson(`${BASE}/upload/status?X-Progress-ID=${identifier}`)).json;
        if (status.state === 'starting') break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.notEqual(status.state, 'uploading');
      assert.notEqual(status.state, 'done');
      assert.equal(status.state, 'starting');
    } finally {
      await page.close();
    }
  });

  test('a daemon killed mid-upload: the page says the upload was interrupted', async () => {
    const file = await makeFile(files.dir, 'interrupted.bin', 32 * MiB);
    const { page } = await openDemo(DOOMED_URL);
    try {
      await throttleUploads(page, 2 * MiB);
      await page.setInputFiles('#files', file.path);
      const upload = item(page, file.name);
      const identifier = await upload.getAttribute('data-identifier');
      await page.waitForFunction(
        (id) => document.querySelector(`li[data-identifier="${id}"] progress`).value > 0,
        identifier,
      );
      // The wrapper started this daemon for this test alone.
      process.kill(DOOMED_PID, 'SIGKILL');
      assert.equal((await outcome(page, file.name)).state, 'error');
      assert.match(await upload.locator('.upload-message').innerText(), /^The upload was interrupted/);
      // The pool agrees: its writer died.
      const status = JSON.parse(await fileupload('--directory', DOOMED_POOL, 'status', identifier));
      assert.equal(status.state, 'error');
      assert.equal(status.error, 'upload interrupted');
    } finally {
      await page.close();
    }
  });
});
