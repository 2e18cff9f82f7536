// tus-js-client (Node) uploads 256 MiB in 8 MiB PATCHes; mid-PATCH the
// upload is interrupted (the server process killed with SIGKILL and
// restarted on the same pool and port, or, under CGI, the client's PATCH
// aborted, after which Apache ends that CGI process); a new Upload finds the
// first in a FileUrlStorage, resumes it from the server's offset, and the
// stored file has the source's sha256. The same with the first chunk sent
// on the creation (uploadDataDuringCreation). (Not with uploadLengthDeferred:
// tus-js-client 4.3.1 under Node cannot resume a stream, and with a file it
// announces a whole chunk's Content-Length for the bytes past the file's
// end and sends none, so that even an uninterrupted upload waits for the
// server's idle timeout; docs/tus.md.)
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { MiB, Server, front, idOf, interruptWhen, makeFile, recorded, resumeStored, scratch, status, storedSha256, tus } from './lib.mjs';

const SIZE = 256 * MiB;
const CHUNK = 8 * MiB;

test('256 MiB, interrupted mid-PATCH, resumed by findPreviousUploads from the server offset', async (t) => {
  await interruptedAndResumed(t, {});
});

test('uploadDataDuringCreation, interrupted mid-PATCH and resumed', async (t) => {
  const log = await interruptedAndResumed(t, { uploadDataDuringCreation: true });
  const [post] = log;
  assert.equal(post.method, 'POST');
  assert.equal(post.status, 201);
  assert.equal(post.headers['Content-Type'], 'application/offset+octet-stream');
  assert.equal(post.answer['Upload-Offset'], String(CHUNK), 'the creation stored the first chunk');
});

/**
 * One upload of SIZE bytes with `extra` options, interrupted mid-PATCH and
 * resumed by a new Upload; returns the log of every request.
 */
async function interruptedAndResumed(t, extra) {
  const f = front();
  const server = f.command ? new Server(f.command) : null;
  if (f.interrupt === 'kill') assert.ok(server, 'TUS_INTERRUPT=kill needs TUS_SERVER');
  if (server) await server.start();
  t.after(() => server?.kill9());
  const { dir, rm } = await scratch();
  t.after(rm);
  const file = await makeFile(dir, 'big.bin', SIZE);
  const storage = new tus.FileUrlStorage(join(dir, 'urls.json'));
  const log = [];
  const options = {
    endpoint: `${f.endpoint}/files`,
    chunkSize: CHUNK,
    urlStorage: storage,
    removeFingerprintOnSuccess: true,
    metadata: { filename: file.name, filetype: 'application/octet-stream' },
    ...extra,
    ...recorded(log, ['Upload-Offset', 'Content-Length', 'Content-Type']),
  };

  // The first attempt, interrupted once the server's status shows it
  // part-way through a PATCH, past its first two.
  const first = new tus.Upload(createReadStream(file.path), { ...options, retryDelays: null });
  const seen = await interruptWhen(f, server, first, async () => {
    if (!first.url) return null;
    const s = await status(f.endpoint, idOf(first.url));
    assert.notEqual(s.state, 'done', 'the upload completed before it could be interrupted');
    return s.state === 'uploading' && s.received >= 2 * CHUNK && s.received % CHUNK !== 0 ? s.received : null;
  }, 'progress mid-PATCH');
  const id = idOf(first.url);
  const [stored] = await storage.findAllUploads();
  assert.equal(stored?.uploadUrl, first.url, 'the URL storage holds the first upload');
  if (server) await server.start();

  // What the server holds now: at least what its status had shown.
  const head = await fetch(first.url, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } });
  assert.equal(head.status, 200);
  const offset = Number(head.headers.get('Upload-Offset'));
  assert.ok(offset >= seen && offset < SIZE, `HEAD offset ${offset} after the status showed ${seen}`);
  assert.equal(head.headers.get('Upload-Length'), String(SIZE));
  const before = log.length;

  // A new Upload of the same file, resumed from the stored URL.
  const second = await resumeStored(file.path, options, (previous) => assert.equal(previous.uploadUrl, first.url));
  assert.equal(second.url, first.url, 'the same upload resumed, not a new one');

  // No new creation; the client asked the offset (HEAD) and its first PATCH
  // starts there. (Under CGI that offset may be past the one above: the
  // process of the aborted PATCH still writes what Apache had read.)
  const resumed = log.slice(before);
  assert.deepEqual(resumed.filter((e) => e.method === 'POST'), [], 'the resume created an upload');
  const patches = resumed.filter((e) => e.method === 'PATCH' && e.status === 204);
  assert.ok(patches.length >= 1);
  const asked = resumed.slice(0, resumed.indexOf(patches[0])).findLast((e) => e.method === 'HEAD' && e.status === 200);
  assert.ok(asked, 'the resume asked the offset before its first PATCH');
  const from = Number(asked.answer['Upload-Offset']);
  assert.ok(from >= offset, `the resume's HEAD said ${from}, after ${offset}`);
  assert.equal(Number(patches[0].headers['Upload-Offset']), from, 'the resume began at the server offset');
  assert.equal(Number(patches.at(-1).answer['Upload-Offset']), SIZE);

  const done = await status(f.endpoint, id);
  assert.equal(done.state, 'done');
  assert.equal(done.filename, file.name);
  assert.equal(done.files[0].length, SIZE);
  assert.equal(done.files[0].sha256, file.sha256, 'status sha256');
  assert.equal(await storedSha256(f.pool, id), file.sha256, 'sha256 of the stored file');
  assert.deepEqual(await storage.findAllUploads(), [], 'the fingerprint is removed on success');
  t.diagnostic(`${f.name}${extra.uploadDataDuringCreation ? ', data on the creation' : ''}: interrupted (${f.interrupt}) at status ${seen}, HEAD ${offset}, resumed from ${from} of ${SIZE}, ${patches.length} PATCHes after`);
  return log;
}
