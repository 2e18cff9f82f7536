// tus-js-client (Node) with parallelUploads: 4: four partial uploads
// (Upload-Concat: partial) sent at once, then the final upload made of
// them (Upload-Concat: final;…): the concatenation extension.
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { after, before, test } from 'node:test';

import { MiB, Server, front, idOf, makeFile, recorded, run, scratch, status, storedSha256, tus } from './lib.mjs';

const f = front();
const server = f.command ? new Server(f.command) : null;
before(async () => server?.start());
after(async () => server?.kill9());

test('parallelUploads: 4 partial uploads concatenated into the final one', async (t) => {
  const options = await fetch(`${f.endpoint}/files`, { method: 'OPTIONS' });
  assert.match(options.headers.get('Tus-Extension') ?? '', /(^|,)concatenation(,|$)/, 'concatenation is advertised');
  const { dir, rm } = await scratch();
  t.after(rm);
  const file = await makeFile(dir, 'parallel.bin', 64 * MiB + 3);
  const log = [];
  const upload = new tus.Upload(createReadStream(file.path), {
    endpoint: `${f.endpoint}/files`,
    parallelUploads: 4,
    chunkSize: 4 * MiB,
    retryDelays: null,
    metadata: { filename: file.name },
    ...recorded(log, ['Upload-Concat', 'Upload-Length', 'Upload-Offset']),
  });
  await run(upload);
  const creations = log.filter((e) => e.method === 'POST');
  assert.equal(creations.length, 5, 'four partial uploads and the final one');
  const partials = creations.filter((e) => e.headers['Upload-Concat'] === 'partial');
  assert.equal(partials.length, 4);
  assert.ok(partials.every((p) => p.status === 201));
  const sizes = partials.map((p) => Number(p.headers['Upload-Length']));
  assert.equal(sizes.reduce((a, b) => a + b, 0), file.size);
  const final = creations.find((e) => (e.headers['Upload-Concat'] ?? '').startsWith('final;'));
  assert.ok(final, 'a final creation');
  assert.equal(final.status, 201);
  const id = idOf(upload.url);
  const s = await status(f.endpoint, id);
  assert.equal(s.state, 'done');
  assert.equal(s.files[0].length, file.size);
  assert.equal(s.files[0].sha256, file.sha256);
  assert.equal(await storedSha256(f.pool, id), file.sha256);
});
