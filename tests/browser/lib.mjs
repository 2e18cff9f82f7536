// Shared helpers of the browser tests: Debian's Chromium through
// playwright-core, generated files, throttling, and the screenshot check.
// The daemons are started by scripts/test-browser.sh, which passes their
// URLs in the environment.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import http from 'node:http';
import { promisify } from 'node:util';

import { chromium } from 'playwright-core';

export const MiB = 1024 * 1024;

// As the machine's notes require: without the background-networking flags
// Chromium keeps trying hosts this closed network refuses.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** The value of a variable the wrapper script must set. */
export function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests through scripts/test-browser.sh`);
  return value;
}

/** A Chromium with a fresh profile; `close()` removes the profile too. */
export async function launch() {
  const profile = await mkdtemp(join(tmpdir(), 'fileupload-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 960, height: 720 },
    // The machine is shared with other heavy tests: be patient.
    timeout: 120_000,
  });
  context.setDefaultTimeout(120_000);
  return {
    context,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** A scratch directory removed by `rm()`. */
export async function scratch() {
  const dir = await mkdtemp(join(tmpdir(), 'fileupload-browser-'));
  return { dir, rm: () => rm(dir, { recursive: true, force: true }) };
}

/** Writes `size` random bytes to `dir/name`; returns its path and sha256. */
export async function makeFile(dir, name, size) {
  const path = join(dir, name);
  const hash = createHash('sha256');
  const file = await open(path, 'w');
  try {
    for (let left = size; left > 0; ) {
      const chunk = randomBytes(Math.min(left, MiB));
      hash.update(chunk);
      await file.write(chunk);
      left -= chunk.length;
    }
  } finally {
    await file.close();
  }
  return { path, name, size, sha256: hash.digest('hex') };
}

export function sha256(data) {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Throttles the page's uploads through the DevTools protocol, so that an
 * upload lasts long enough to be watched. Downloads stay unthrottled.
 */
export async function throttleUploads(page, bytesPerSecond) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: 0,
    downloadThroughput: -1,
    uploadThroughput: bytesPerSecond,
  });
  return cdp;
}

/**
 * Records every value any <progress> of the page takes, by a
 * MutationObserver installed before the page's own scripts run, so no
 * value is missed between two looks from the test. Read with
 * `progressValues(page)`.
 */
export async function recordProgress(page) {
  await page.addInitScript(() => {
    window.__progress = [];
    new MutationObserver((records) => {
      for (const record of records) {
        const bar = record.target;
        if (!(bar instanceof HTMLProgressElement)) continue;
        const owner = bar.closest('[data-identifier]');
        window.__progress.push({
          owner: owner ? owner.dataset.identifier : bar.id,
          value: bar.hasAttribute('value') ? bar.value : null,
        });
      }
    }).observe(document, { subtree: true, attributes: true, attributeFilter: ['value'] });
  });
}

/** The values recorded by `recordProgress`, for one owner when given. */
export async function progressValues(page, owner) {
  const all = await page.evaluate(() => window.__progress);
  return all.filter((p) => owner === undefined || p.owner === owner).map((p) => p.value);
}

/**
 * The values strictly between 0 and 100, with repeats of one value in a
 * row dropped: what a watcher saw the bar do while it moved.
 */
export function movingValues(values) {
  const moving = [];
  for (const v of values) {
    if (v !== null && v > 0 && v < 100 && moving[moving.length - 1] !== v) moving.push(v);
  }
  return moving;
}

/**
 * Measures a PNG by decoding it in the browser itself (a page of its own,
 * so no page's policy is involved): how many distinct colours, and the
 * standard deviation of the luminance. A blank page has one colour and
 * no deviation.
 */
export async function measurePng(context, png) {
  const page = await context.newPage();
  try {
    return await page.evaluate(async (base64) => {
      const image = new Image();
      image.src = 'data:image/png;base64,' + base64;
      await image.decode();
      const canvas = document.createElement('canvas');
      canvas.width = image.naturalWidth;
      canvas.height = image.naturalHeight;
      const g = canvas.getContext('2d');
      g.drawImage(image, 0, 0);
      const data = g.getImageData(0, 0, canvas.width, canvas.height).data;
      const colours = new Set();
      let sum = 0;
      let squares = 0;
      const n = data.length / 4;
      for (let i = 0; i < data.length; i += 4) {
        colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
        const y = 0.2126 * data[i] + 0.7152 * data[i + 1] + 0.0722 * data[i + 2];
        sum += y;
        squares += y * y;
      }
      const mean = sum / n;
      return {
        width: canvas.width,
        height: canvas.height,
        colours: colours.size,
        stddev: Math.sqrt(Math.max(0, squares / n - mean * mean)),
      };
    }, png.toString('base64'));
  } finally {
    await page.close();
  }
}

/** Runs the fileupload binary with the given arguments; its stdout. */
export async function fileupload(...args) {
  const { stdout } = await promisify(execFile)(env('FILEUPLOAD_BIN'), args);
  return stdout;
}

export async function fileSha256(path) {
  return sha256(await readFile(path));
}

/** Fetches a URL's JSON, failing on a non-JSON answer. */
export async function getJson(url, init) {
  const response = await fetch(url, init);
  const text = await response.text();
  try {
    return { status: response.status, headers: response.headers, json: JSON.parse(text) };
  } catch {
    throw new Error(`${url} answered ${response.status} with non-JSON: ${text.slice(0, 200)}`);
  }
}

/**
 * An upload sent by hand over a real socket, its body only when the test
 * says so: `send(n)` more bytes of the file, `finish()` the rest.
 */
export function slowUpload(base, id, fileBytes) {
  const boundary = '----slow' + randomBytes(12).toString('hex');
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.bin"\r\n` +
      'Content-Type: application/octet-stream\r\n\r\n',
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const size = head.length + fileBytes + tail.length;
  const request = http.request(`${base}/upload?X-Progress-ID=${id}`, {
    method: 'POST',
    headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'Content-Length': size },
  });
  const response = new Promise((resolve, reject) => {
    request.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    request.on('error', reject);
  });
  // The headers go now, so the server can judge the length before any body.
  request.flushHeaders();
  let sent = 0;
  const write = (buffer) => new Promise((resolve) => (request.write(buffer) ? resolve() : request.once('drain', resolve)));
  return {
    size,
    response,
    async send(bytes) {
      if (sent === 0) await write(head);
      await write(randomBytes(bytes));
      sent += bytes;
    },
    async finish() {
      if (sent < fileBytes) await write(randomBytes(fileBytes - sent));
      request.end(tail);
      return response;
    },
    close() {
      request.destroy();
    },
  };
}
