// The resumable page: one file uploaded with tus-js-client's browser build,
// as Uppy's tus plugin does it. Server errors are retried; when the browser
// goes offline the upload waits for the `online` event and starts again,
// which asks the server its offset (HEAD) and sends the rest from there.
// Pause aborts the request under way; Resume starts again the same way.
// The bar follows the server's status document: the tus upload ID is the
// upload's identifier.
//
// Query parameters (for a page served apart from the server it talks to,
// as the tests do): `endpoint` (the creation URL, default `files`),
// `status` (the status URL, default `upload/status`), `chunk` (bytes per
// PATCH; default one PATCH for the whole file).
'use strict';

(function () {
  const demo = window.FileuploadDemo;
  const POLL_MS = 250;
  const params = new URLSearchParams(location.search);
  // Absolute, so that the upload's URL is too (tus-js-client resolves the
  // Location against it).
  const endpoint = new URL(params.get('endpoint') || 'files', location.href).href;
  const statusBase = params.get('status') || 'upload/status';
  const chunkSize = Number(params.get('chunk')) || Infinity;
  const $ = (id) => document.getElementById(id);
  const view = { bar: $('progress'), percent: $('percent'), speed: $('speed'), eta: $('eta') };
  let upload = null;
  let timer = null;

  function show(state, error) {
    $('state').textContent = state;
    $('upload').dataset.state = state;
    $('error').textContent = error ? String(error) : '';
    $('pause').disabled = state !== 'uploading';
    $('resume').disabled = !['paused', 'error', 'offline'].includes(state);
  }

  function idOf(url) {
    return decodeURIComponent(new URL(url).pathname.split('/').pop());
  }

  async function status(id) {
    const answer = await fetch(statusBase + '?X-Progress-ID=' + encodeURIComponent(id), { cache: 'no-store' });
    return answer.json();
  }

  function poll(id, speedometer) {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      try {
        const s = await status(id);
        if (s.state === 'uploading') demo.showProgress(s, view, speedometer);
      } catch (e) {
        // Offline too: the next poll tries again.
      }
      if (upload && $('state').textContent !== 'done') poll(id, speedometer);
    }, POLL_MS);
  }

  function start(file) {
    if (upload) upload.abort();
    const speedometer = new demo.Speedometer();
    $('name').textContent = file.name + ' (' + demo.formatBytes(file.size) + ')';
    $('url').textContent = '';
    $('sha256').textContent = '';
    $('sent').textContent = '0';
    const current = new tus.Upload(file, {
      endpoint,
      chunkSize,
      retryDelays: [0, 500, 1000, 2000, 4000],
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      metadata: { filename: file.name, filetype: file.type || 'application/octet-stream' },
      onUploadUrlAvailable() {
        $('url').textContent = current.url;
        poll(idOf(current.url), speedometer);
      },
      onProgress(sent) {
        $('sent').textContent = String(sent);
      },
      onError(error) {
        if (!navigator.onLine) {
          show('offline', error);
          window.addEventListener('online', () => {
            show('uploading');
            current.start();
          }, { once: true });
        } else {
          show('error', error);
        }
      },
      async onSuccess() {
        clearTimeout(timer);
        const s = await status(idOf(current.url));
        if (s.state === 'done') {
          demo.showProgress({ state: 'uploading', received: s.files[0].length, size: s.files[0].length }, view, speedometer);
          $('sha256').textContent = s.files[0].sha256;
        }
        show(s.state, s.state === 'done' ? '' : demo.explain(s.status, s.error));
      },
    });
    upload = current;
    $('pause').onclick = () => {
      current.abort();
      show('paused');
    };
    $('resume').onclick = () => {
      show('uploading');
      current.start();
    };
    show('uploading');
    // A file chosen again after a reload goes on from the server's offset.
    current.findPreviousUploads().then((previous) => {
      if (previous.length) current.resumeFromPreviousUpload(previous[0]);
      current.start();
    });
  }

  $('file').addEventListener('change', () => {
    if ($('file').files[0]) start($('file').files[0]);
  });
  const drop = $('drop');
  drop.addEventListener('dragover', (event) => {
    event.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    if (event.dataTransfer.files[0]) start(event.dataTransfer.files[0]);
  });
})();
