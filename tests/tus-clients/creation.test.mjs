// tus-js-client (Node) with the creation extensions: the first chunk sent
// with the creation (uploadDataDuringCreation, creation-with-upload), and
// an upload of a stream whose length is told only at its end
// (uploadLengthDeferred, creation-defer-length).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';

import { MiB, Server, front, idOf, makeFile, recorded, run, scratch, status, storedSha256, tus } from './lib.mjs';

const f = front();
const server = f.command ? new Server(f.command) : null;
before(async () => server?.start());
after(async () => server?.kill9());

test('uploadDataDuringCreation: the first chunk rides on the POST', async (t) => {
  const { dir, rm } = await scratch();
  t.after(rm);
  const chunk = 4 * MiB;
  const file = await makeFile(dir, 'with-creation.bin', 3 * chunk + 12345);
  const log = [];
  const upload = new tus.Upload(createReadStream(file.path), {
    endpoint: `${f.endpoint}/files`,
    chunkSize: chunk,
    uploadDataDuringCreation: true,
    retryDelays: null,
    metadata: { filename: file.name, filetype: 'application/x-test' },
    ...recorded(log, ['Upload-Length', 'Upload-Offset', 'Content-Type', 'Location']),
  });
  await run(upload);
  const [post, ...patches] = log;
  assert.equal(post.method, 'POST');
  assert.equal(post.status, 201);
  assert.equal(post.headers['Content-Type'], 'application/offset+octet-stream');
  assert.equal(post.answer['Upload-Offset'], String(chunk), 'the creation stored the first chunk');
  assert.deepEqual(
    patches.map((p) => [p.method, p.status, p.headers['Upload-Offset'], p.answer['Upload-Offset']]),
    [
      ['PATCH', 204, String(chunk), String(2 * chunk)],
      ['PATCH', 204, String(2 * chunk), String(3 * chunk)],
      ['PATCH', 204, String(3 * chunk), String(file.size)],
    ],
  );
  const id = idOf(upload.url);
  const s = await status(f.endpoint, id);
  assert.equal(s.state, 'done');
  assert.equal(s.files[0]['content-type'], 'application/x-test');
  assert.equal(s.files[0].sha256, file.sha256);
  assert.equal(await storedSha256(f.pool, id), file.sha256);
});

test('uploadLengthDeferred: a stream of unknown length, the length told at its end', async () => {
  const chunk = 4 * MiB;
  const size = 5 * chunk + 777;
  const hash = createHash('sha256');
  // Made as it is read, 1 MiB at a time: the client cannot know its length.
  async function* bytes() {
    for (let left = size; left > 0; ) {
      const part = randomBytes(Math.min(left, MiB));
      hash.update(part);
      left -= part.length;
      yield part;
    }
  }
  const log = [];
  const upload = new tus.Upload(Readable.from(bytes(), { objectMode: false }), {
    endpoint: `${f.endpoint}/files`,
    chunkSize: chunk,
    uploadLengthDeferred: true,
    retryDelays: null,
    metadata: { filename: 'stream.bin' },
    ...recorded(log, ['Upload-Defer-Length', 'Upload-Length', 'Upload-Offset']),
  });
  // Before the second PATCH (the client waits for this), what the server
  // says of the length: nothing yet.
  let deferredSeen;
  const record = upload.options.onBeforeRequest;
  upload.options.onBeforeRequest = async (req) => {
    record(req);
    if (deferredSeen === undefined && req.getMethod() === 'PATCH' && req.getHeader('Upload-Offset') !== '0') {
      deferredSeen = (await status(f.endpoint, idOf(upload.url))).size;
    }
  };
  await run(upload);
  const sha256 = hash.digest('hex');
  const [post, ...patches] = log;
  assert.equal(post.method, 'POST');
  assert.equal(post.status, 201);
  assert.equal(post.headers['Upload-Defer-Length'], '1');
  assert.equal(post.headers['Upload-Length'], null);
  assert.equal(deferredSeen, null, 'status size while the length is deferred');
  assert.ok(patches.length >= 6, `${patches.length} PATCHes`);
  assert.ok(patches.every((p) => p.method === 'PATCH' && p.status === 204));
  // Only the PATCH that reaches the end of the stream says the length.
  const told = patches.filter((p) => p.headers['Upload-Length'] !== null);
  assert.equal(told.length, 1);
  assert.equal(told[0].headers['Upload-Length'], String(size));
  assert.equal(patches.at(-1).answer['Upload-Offset'], String(size));
  const id = idOf(upload.url);
  const s = await status(f.endpoint, id);
  assert.equal(s.state, 'done');
  assert.equal(s.size, size);
  assert.equal(s.files[0].length, size);
  assert.equal(s.files[0].sha256, sha256);
  assert.equal(await storedSha256(f.pool, id), sha256);
});
