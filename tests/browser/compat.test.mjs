// The status endpoint spoken to as the clients of nginx's upload-progress
// module speak to it (jquery.uploadProgress and its kin): the identifier in
// the query or in the X-Progress-ID header, or JSONP run as a script tag
// runs it; and the fields and states those clients read: `state`,
// `received` and `size` while uploading, `status` on error. Real sockets
// against the daemon; no browser needed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import vm from 'node:vm';
import { describe, test } from 'node:test';

import { MiB, env, slowUpload } from './lib.mjs';

const BASE = env('FILEUPLOAD_URL');
const SMALL_URL = env('FILEUPLOAD_SMALL_URL');

function newId() {
  return randomBytes(16).toString('hex');
}

// The three ways a client asks, each returning the status object.
const ASKERS = {
  async query(base, id) {
    const r = await fetch(`${base}/upload/status?X-Progress-ID=${id}`);
    assert.match(r.headers.get('content-type'), /^application\/json/);
    return r.json();
  },
  async header(base, id) {
    const r = await fetch(`${base}/upload/status`, { headers: { 'X-Progress-ID': id } });
    assert.match(r.headers.get('content-type'), /^application\/json/);
    return r.json();
  },
  // As a <script> tag would: the answer runs as JavaScript in a context
  // where the callback is the only thing defined.
  async jsonp(base, id) {
    const name = 'jQuery17100123456789_' + Date.now();
    const r = await fetch(`${base}/upload/status?X-Progress-ID=${id}&callback=${name}`);
    assert.equal(r.headers.get('content-type'), 'application/javascript');
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    const script = await r.text();
    const calls = [];
    vm.runInNewContext(script, { [name]: (value) => calls.push(value) });
    assert.equal(calls.length, 1, script);
    // Into this realm's objects, so that deepEqual compares like with like.
    return JSON.parse(JSON.stringify(calls[0]));
  },
};

// What jquery.uploadProgress does with a status: the percentage while
// uploading, and whether to stop polling.
function nginxClient(upload) {
  if (upload.state === 'uploading') {
    return { percents: Math.floor((upload.received / upload.size) * 1000) / 10, stop: false };
  }
  if (upload.state === 'done') return { percents: 100, stop: true };
  if (upload.state === 'error') return { error: upload.status, stop: true };
  return { percents: 0, stop: false };
}

async function until(what, predicate, tries = 600) {
  for (let i = 0; i < tries; i++) {
    const value = await what();
    if (predicate(value)) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('gave up waiting');
}

describe('nginx upload-progress clients', () => {
  for (const [way, ask] of Object.entries(ASKERS)) {
    test(`by ${way}: starting, uploading with received and size, done`, async () => {
      const id = newId();
      assert.deepEqual(await ask(BASE, id), { state: 'starting' });
      assert.deepEqual(nginxClient(await ask(BASE, id)), { percents: 0, stop: false });

      const upload = slowUpload(BASE, id, 4 * MiB);
      try {
        await upload.send(2 * MiB);
        const first = await until(
          () => ask(BASE, id),
          (s) => s.state === 'uploading' && s.received > 0,
        );
        assert.equal(first.size, upload.size);
        assert.ok(first.received <= upload.size);
        const seen = nginxClient(first);
        assert.equal(seen.stop, false);
        assert.ok(seen.percents > 0 && seen.percents < 100, JSON.stringify(seen));
        // Polled again, it never goes backwards.
        const again = await ask(BASE, id);
        assert.equal(again.state, 'uploading');
        assert.ok(again.received >= first.received);
      } finally {
        const answer = await upload.finish();
        assert.equal(answer.status, 201, answer.body);
      }
      const done = await ask(BASE, id);
      assert.equal(done.state, 'done');
      assert.equal(done.received, upload.size);
      assert.equal(done.size, upload.size);
      assert.deepEqual(nginxClient(done), { percents: 100, stop: true });
    });

    test(`by ${way}: an upload refused as too large reads as error with status 413`, async () => {
      const id = newId();
      const upload = slowUpload(SMALL_URL, id, 2 * MiB);
      // Refused on its length, before the body: the answer comes at once.
      const answer = await upload.response.finally(() => upload.close());
      assert.equal(answer.status, 413);
      const status = await ask(SMALL_URL, id);
      assert.equal(status.state, 'error');
      assert.equal(status.status, 413);
      assert.equal(typeof status.error, 'string');
      assert.deepEqual(nginxClient(status), { error: 413, stop: true });
    });
  }

  test('the original interface: ?X-Progress-ID=…&status on the upload URL', async () => {
    const id = newId();
    const r = await fetch(`${BASE}/upload?X-Progress-ID=${id}&status`);
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { state: 'starting' });
  });

  test('a JSONP name that could run code is refused, not echoed', async () => {
    const r = await fetch(`${BASE}/upload/status?X-Progress-ID=${newId()}&callback=alert(1)//`);
    assert.equal(r.status, 400);
    assert.doesNotMatch(await r.text(), /alert/);
  });
});
