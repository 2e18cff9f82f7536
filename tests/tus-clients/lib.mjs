// Shared helpers of the tus-js-client tests: the front end under test (from
// the environment scripts/test-tus-clients.sh sets), the server process a
// test may kill and restart, generated files, and what the server stored.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawn, execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { promisify } from 'node:util';

import * as tus from 'tus-js-client';

export { tus };
// Scratch directories and random files, as the browser tests make them.
export { MiB, makeFile, scratch } from '../browser/lib.mjs';

/** The value of a variable the wrapper script must set. */
export function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests through scripts/test-tus-clients.sh`);
  return value;
}

/**
 * The front end under test: `name`, the `endpoint` (the base before
 * `/files` and `/upload/status`), its `pool`, and how a test interrupts an
 * upload: `kill` (SIGKILL to the server process the test started from
 * `command`, then a restart of the same command on the same port) or
 * `abort` (the client gives up its PATCH; under CGI Apache then ends the
 * process of that request), or `none` for a test that interrupts
 * otherwise.
 */
export function front() {
  const interrupt = env('TUS_INTERRUPT');
  if (!['kill', 'abort', 'none'].includes(interrupt)) throw new Error(`TUS_INTERRUPT=${interrupt}`);
  return {
    name: env('TUS_FRONT'),
    endpoint: env('TUS_ENDPOINT'),
    pool: env('TUS_POOL'),
    interrupt,
    command: process.env.TUS_SERVER ? JSON.parse(process.env.TUS_SERVER) : null,
  };
}

/**
 * The server process of a front end that has one (the daemon, the FastCGI
 * responder), started by the test so that it can kill it: `start()`
 * resolves once it says it listens; `kill9()` sends SIGKILL and waits for
 * its end; `log` is what it wrote to stderr (the request log among it).
 */
export class Server {
  constructor(command) {
    this.command = command;
    this.child = null;
    this.log = '';
  }

  async start() {
    const child = spawn(this.command[0], this.command.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    child.stderr.setEncoding('utf8');
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "listening on" in 10 s:\n${this.log}`)), 10_000);
      child.stderr.on('data', (text) => {
        this.log += text;
        if (this.log.includes('listening on')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`server ended (${code ?? signal}) before listening:\n${this.log}`));
      });
    });
    // Stopped with the test process, whatever ends it.
    process.once('exit', () => child.kill('SIGKILL'));
  }

  async kill9() {
    const child = this.child;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const ended = new Promise((resolve) => child.once('exit', resolve));
    process.kill(child.pid, 'SIGKILL');
    await ended;
  }

  /** The request log lines (`time host method path status bytes duration id`). */
  requests() {
    return this.log
      .split('\n')
      .map((line) => line.split(' '))
      .filter((f) => f.length === 8 && /^\d{3}$/.test(f[4]))
      .map(([, , method, path, status, bytes, , id]) => ({ method, path, status: Number(status), bytes: Number(bytes), id }));
  }
}

/** The sha256 of a file, read as a stream (the stored files are large). */
export function fileSha256(path) {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve(hash.digest('hex')))
      .on('error', reject);
  });
}

/** The upload's identifier: the last segment of its URL. */
export function idOf(uploadUrl) {
  return decodeURIComponent(new URL(uploadUrl).pathname.split('/').pop());
}

/** The status document of an upload, through the front end. */
export async function status(endpoint, id) {
  const response = await fetch(`${endpoint}/upload/status?X-Progress-ID=${encodeURIComponent(id)}`);
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`status answered ${response.status} with non-JSON: ${text.slice(0, 200)}`);
  }
}

/** The sha256 of the file the pool stored for a complete upload (`fileupload path`). */
export async function storedSha256(pool, id) {
  const { stdout } = await promisify(execFile)(env('FILEUPLOAD_BIN'), ['--directory', pool, 'path', id]);
  return fileSha256(stdout.trim());
}

/**
 * Starts a tus.Upload; resolves on its success, rejects with the client's
 * error. (An upload stopped by `abort()` does neither.)
 */
export function run(upload) {
  return new Promise((resolve, reject) => {
    upload.options.onSuccess = () => resolve(upload);
    upload.options.onError = reject;
    upload.start();
  });
}

/**
 * Starts `upload`, a first attempt with no retries, and polls `ready()`
 * until it returns something other than null (at most 60 s; `what` names
 * the moment awaited); then interrupts the upload as the front end says:
 * SIGKILL to `server` (the client must see an error), or the client's
 * abort. Returns what `ready()` returned. The server is left stopped.
 */
export async function interruptWhen(f, server, upload, ready, what) {
  let error = null;
  let completed = false;
  const end = run(upload).then(
    () => (completed = true),
    (e) => (error = e),
  );
  let seen = null;
  const deadline = Date.now() + 60_000;
  while (seen === null) {
    assert.ok(!completed, 'the upload completed before it could be interrupted');
    assert.ok(Date.now() < deadline, `no ${what} within 60 s`);
    seen = await ready();
    if (seen === null) await sleep(2);
  }
  if (f.interrupt === 'kill') {
    await server.kill9();
    await end;
    assert.ok(!completed, 'the upload completed before it could be interrupted');
    assert.ok(error, 'the client saw no error when its server was killed');
  } else {
    await upload.abort();
  }
  return seen;
}

/**
 * A new Upload of the file at `path` with `options`, resumed from the one
 * upload the options' URL storage holds, which `check` looks at first;
 * resolves with the Upload once it completes.
 */
export async function resumeStored(path, options, check) {
  const upload = new tus.Upload(createReadStream(path), {
    ...options,
    // A CGI process may still hold the upload's lock a moment (423).
    retryDelays: [0, 200, 500, 1000, 2000, 4000],
  });
  const previous = await upload.findPreviousUploads();
  assert.equal(previous.length, 1, 'findPreviousUploads finds the interrupted upload');
  check(previous[0]);
  upload.resumeFromPreviousUpload(previous[0]);
  return run(upload);
}

/**
 * Options that record every request the client sends and every answer it
 * gets, in `log`: `{ method, url, headers: {name: value}, status,
 * answer: {name: value} }` for the headers named in `names`.
 */
export function recorded(log, names) {
  return {
    onBeforeRequest(req) {
      log.push({ method: req.getMethod(), url: req.getURL(), headers: pick((n) => req.getHeader(n)), status: null, answer: {} });
    },
    onAfterResponse(req, res) {
      const entry = log.findLast((e) => e.method === req.getMethod() && e.url === req.getURL() && e.status === null);
      if (entry) {
        entry.status = res.getStatus();
        entry.answer = pick((n) => res.getHeader(n));
      }
    },
  };
  function pick(get) {
    return Object.fromEntries(names.map((n) => [n, get(n) ?? null]));
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
