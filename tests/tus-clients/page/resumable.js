// Uploads the chosen file with tus-js-client, as Uppy's tus plugin does:
// retries on server errors, and when the browser goes offline the upload
// waits for the `online` event, then starts again, which asks the server
// its offset (HEAD) and sends the rest from there. Pause aborts the
// request under way; Resume starts again the same way. Once done it shows
// the sha256 from the upload's status document.
'use strict';

const params = new URLSearchParams(location.search);
// Absolute, so that the upload's URL is too (tus-js-client resolves the
// Location against it).
const endpoint = new URL(params.get('endpoint'), location.href).href;
const statusUrl = params.get('status');
const chunkSize = Number(params.get('chunk'));
const $ = (id) => document.getElementById(id);

function show(state, error) {
  $('state').textContent = state;
  if (error) $('error').textContent = String(error);
}

$('file').addEventListener('change', () => {
  const file = $('file').files[0];
  const upload = new tus.Upload(file, {
    endpoint,
    chunkSize,
    retryDelays: [0, 500, 1000, 2000, 4000],
    metadata: { filename: file.name, filetype: file.type || 'application/octet-stream' },
    onUploadUrlAvailable() {
      $('url').textContent = upload.url;
    },
    onProgress(sent, total) {
      $('sent').textContent = String(sent);
      $('progress').value = Math.floor((100 * sent) / total);
    },
    onError(error) {
      if (!navigator.onLine) {
        show('offline', error);
        window.addEventListener('online', () => {
          show('uploading');
          upload.start();
        }, { once: true });
      } else {
        show('error', error);
      }
    },
    async onSuccess() {
      const id = decodeURIComponent(new URL(upload.url).pathname.split('/').pop());
      const answer = await fetch(`${statusUrl}?X-Progress-ID=${encodeURIComponent(id)}`);
      const status = await answer.json();
      $('sha256').textContent = status.state === 'done' ? status.files[0].sha256 : '';
      show(status.state);
    },
  });
  $('pause').onclick = () => {
    upload.abort();
    show('paused');
  };
  $('resume').onclick = () => {
    show('uploading');
    upload.start();
  };
  show('uploading');
  upload.start();
});
