// The demo page: every chosen or dropped file becomes one upload with its
// own identifier, posted with XMLHttpRequest while the status endpoint is
// polled for the bar. Polling the server rather than reading the
// XMLHttpRequest's own upload events is the point: it is the protocol that
// any other process or page can use to follow the same upload.
'use strict';

(function () {
  const demo = window.FileuploadDemo;
  const POLL_MS = 250;

  const input = document.getElementById('files');
  const drop = document.getElementById('drop');
  const list = document.getElementById('uploads');
  const empty = document.getElementById('empty');
  const announce = document.getElementById('announce');
  const template = document.getElementById('upload-template');

  function say(text) {
    announce.textContent = text;
  }

  class Upload {
    constructor(file) {
      this.file = file;
      this.id = demo.newIdentifier();
      this.finished = false;
      this.timer = null;
      this.xhr = null;
      this.speedometer = new demo.Speedometer();
      this.started = 0;

      const item = template.content.firstElementChild.cloneNode(true);
      this.item = item;
      item.dataset.identifier = this.id;
      const name = item.querySelector('.upload-name');
      name.id = 'name-' + this.id;
      name.textContent = file.name;
      item.querySelector('.upload-size').textContent = demo.formatBytes(file.size);
      const stats = item.querySelector('.upload-stats');
      stats.id = 'stats-' + this.id;
      this.view = {
        bar: item.querySelector('.upload-bar'),
        percent: item.querySelector('.upload-percent'),
        speed: item.querySelector('.upload-speed'),
        eta: item.querySelector('.upload-eta'),
      };
      this.view.bar.setAttribute('aria-labelledby', name.id);
      this.view.bar.setAttribute('aria-describedby', stats.id);
      this.message = item.querySelector('.upload-message');
      this.description = item.querySelector('.upload-description');
      this.cancelButton = item.querySelector('.upload-cancel');
      this.cancelButton.setAttribute('aria-label', 'Cancel the upload of ' + file.name);
      this.cancelButton.addEventListener('click', () => this.cancel());
      list.append(item);
      empty.hidden = true;
    }

    start() {
      const xhr = new XMLHttpRequest();
      this.xhr = xhr;
      const body = new FormData();
      body.append('file', this.file, this.file.name);
      xhr.open('POST', 'upload?X-Progress-ID=' + encodeURIComponent(this.id));
      // JSON, not the HTML page that a form post would get.
      xhr.setRequestHeader('Accept', 'application/json');
      xhr.addEventListener('load', () => this.answered(xhr.status, xhr.responseText));
      xhr.addEventListener('error', () => this.lost());
      xhr.send(body);
      this.started = performance.now();
      this.setState('uploading');
      say('Uploading ' + this.file.name);
      this.poll();
    }

    poll() {
      if (this.finished) return;
      fetch(demo.statusUrl(this.id), { cache: 'no-store', headers: { Accept: 'application/json' } })
        .then((response) => response.json())
        .then((status) => {
          if (!this.finished) this.showStatus(status);
        })
        // A missed poll is simply retried at the next tick.
        .catch(() => {})
        .finally(() => {
          if (!this.finished) this.timer = setTimeout(() => this.poll(), POLL_MS);
        });
    }

    showStatus(status) {
      if (status.state === 'error') {
        // The server knows why (too large, interrupted, …) often before the
        // browser does: a refused body may still be in flight.
        this.fail(status.status, status.error);
        if (this.xhr) this.xhr.abort();
      } else if (status.state === 'done') {
        this.complete(status);
      } else {
        demo.showProgress(status, this.view, this.speedometer);
      }
    }

    answered(code, text) {
      let reply = null;
      try {
        reply = JSON.parse(text);
      } catch (e) {
        reply = null;
      }
      if (code === 201 && reply && reply.state === 'done') {
        this.complete(reply);
      } else if (reply && reply.state === 'error') {
        this.fail(reply.status || code, reply.error);
      } else {
        this.fail(code, 'unexpected answer');
      }
    }

    // The connection broke before an answer came: the server may have
    // refused the upload and closed it (say, over the size limit, judged
    // on its length before the body is read), so ask it once why.
    lost() {
      if (this.finished) return;
      fetch(demo.statusUrl(this.id), { cache: 'no-store' })
        .then((response) => response.json())
        .then((status) => {
          if (status.state === 'error') this.fail(status.status, status.error);
          else if (status.state === 'done') this.complete(status);
          else this.fail(0, 'the connection to the server was lost');
        })
        .catch(() => this.fail(0, 'the server cannot be reached'));
    }

    cancel() {
      if (this.finished) return;
      this.finish('cancelled');
      if (this.xhr) this.xhr.abort();
      // Clearing tells the server to stop and remove what it has.
      fetch('upload/clear?X-Progress-ID=' + encodeURIComponent(this.id), { method: 'POST' }).catch(() => {});
      this.showMessage('Cancelled.');
      say('Cancelled the upload of ' + this.file.name);
    }

    complete(description) {
      if (this.finished) return;
      this.finish('done');
      this.view.bar.value = 100;
      const took = (performance.now() - this.started) / 1000;
      this.view.percent.textContent = '100%: ' + demo.formatBytes(description.received) + ' in ' + demo.formatDuration(took);
      this.view.speed.textContent = '';
      this.view.eta.textContent = '';
      this.description.replaceChildren(demo.renderDescription(description));
      this.description.hidden = false;
      say('Uploaded ' + this.file.name);
    }

    fail(code, message) {
      if (this.finished) return;
      this.finish('error');
      this.view.eta.textContent = '';
      this.item.dataset.status = String(code || 0);
      this.showMessage(demo.explain(code, message));
    }

    finish(state) {
      this.finished = true;
      clearTimeout(this.timer);
      this.setState(state);
      this.cancelButton.hidden = true;
    }

    showMessage(text) {
      this.message.textContent = text;
      this.message.hidden = false;
    }

    setState(state) {
      this.item.dataset.state = state;
    }
  }

  function uploadAll(files) {
    for (const file of Array.from(files)) new Upload(file).start();
  }

  input.addEventListener('change', () => {
    uploadAll(input.files);
    // So that choosing the same file again is a change too.
    input.value = '';
  });

  drop.addEventListener('dragenter', (event) => {
    event.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragover', (event) => {
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    if (event.dataTransfer && event.dataTransfer.files.length) uploadAll(event.dataTransfer.files);
  });
  // A file dropped beside the zone would otherwise replace the page.
  for (const type of ['dragover', 'drop']) {
    window.addEventListener(type, (event) => event.preventDefault());
  }
})();
