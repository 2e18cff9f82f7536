// What both demo pages share: identifiers, the reading of the status JSON
// into a progress display, and the rendering of descriptions and errors.
// Plain browser JavaScript with no build step, so that it can be read as
// the reference client of the protocol.
'use strict';

window.FileuploadDemo = (function () {
  // The server mints an identifier when an upload carries none, but a
  // client that wants to poll must know it before the upload answers, so
  // the pages mint their own: 128 random bits, as the server does.
  function newIdentifier() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  function statusUrl(id) {
    return 'upload/status?X-Progress-ID=' + encodeURIComponent(id);
  }

  function formatBytes(n) {
    if (typeof n !== 'number' || !isFinite(n)) return '';
    if (n < 1024) return n + (n === 1 ? ' byte' : ' bytes');
    const units = ['KiB', 'MiB', 'GiB', 'TiB'];
    let value = n / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return value.toFixed(value < 10 ? 1 : 0) + ' ' + units[unit];
  }

  function formatDuration(seconds) {
    if (!isFinite(seconds) || seconds < 0) return '';
    const s = Math.max(1, Math.round(seconds));
    if (s < 60) return s + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + (s % 60) + ' s';
    return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
  }

  // Speed over the last couple of seconds of polls rather than since the
  // start: it follows a connection that speeds up or slows down, and the
  // time left follows with it.
  class Speedometer {
    constructor() {
      this.samples = [];
    }

    add(received) {
      const now = performance.now();
      this.samples.push({ t: now, received });
      while (this.samples.length > 2 && now - this.samples[0].t > 2500) {
        this.samples.shift();
      }
    }

    // Bytes per second, or null until two samples lie apart in time.
    rate() {
      const first = this.samples[0];
      const last = this.samples[this.samples.length - 1];
      if (!first || last.t - first.t < 200) return null;
      return ((last.received - first.received) * 1000) / (last.t - first.t);
    }
  }

  // Shows a status document in the elements of one upload: `bar` is a
  // <progress>, the others are text elements (any may be missing).
  function showProgress(status, view, speedometer) {
    const received = typeof status.received === 'number' ? status.received : 0;
    const size = typeof status.size === 'number' ? status.size : null;
    if (status.state === 'starting') {
      view.percent.textContent = 'Waiting for the server…';
      return;
    }
    speedometer.add(received);
    if (size) {
      const percent = Math.min(100, Math.floor((received * 1000) / size) / 10);
      view.bar.value = percent;
      view.percent.textContent = percent.toFixed(1) + '% (' + formatBytes(received) + ' of ' + formatBytes(size) + ')';
    } else {
      // Without a length (a chunked body) there is no fraction to show: an
      // indeterminate bar, and the bytes so far.
      view.bar.removeAttribute('value');
      view.percent.textContent = formatBytes(received) + ' so far';
    }
    const rate = speedometer.rate();
    if (rate !== null && view.speed) {
      view.speed.textContent = formatBytes(Math.round(rate)) + '/s';
    }
    if (rate && size && view.eta) {
      view.eta.textContent = formatDuration((size - received) / rate) + ' left';
    }
  }

  // A readable sentence for an error from the server (`status` is its HTTP
  // code, 0 when the connection broke) with the server's own words.
  function explain(status, message) {
    const said = message ? ': ' + message : '';
    // The status of an upload whose writer died says so with a 500.
    if (message === 'upload interrupted') return 'The upload was interrupted' + said + '.';
    switch (status) {
      case 413:
        return 'The upload is too large for this server' + said + ' (HTTP 413).';
      case 409:
        return 'Another upload with the same identifier is in progress' + said + ' (HTTP 409).';
      case 503:
        return 'The server is busy with other uploads; try again shortly' + said + ' (HTTP 503).';
      case 0:
      case undefined:
      case null:
        return 'The upload was interrupted' + said + '.';
      default:
        return 'The upload failed' + said + ' (HTTP ' + status + ').';
    }
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // The description as DOM nodes. Built with textContent only: file names
  // are whatever the sender chose.
  function renderDescription(description) {
    const root = element('div', 'description');
    const id = element('p', 'description-id', 'Identifier ');
    id.append(element('code', 'identifier', description.identifier || ''));
    root.append(id);
    for (const file of description.files || []) {
      const box = element('div', 'file');
      box.append(element('h3', 'file-name', file.filename || '(no name)'));
      const list = element('dl', 'file-facts');
      const facts = [
        ['Size', formatBytes(file.length) + ' (' + file.length + ' bytes)', 'file-length'],
        ['Type', file['content-type'] || 'unknown', 'file-type'],
        ['Field', file.field, 'file-field'],
        ['SHA-256', file.sha256, 'sha256'],
      ];
      for (const [name, value, className] of facts) {
        list.append(element('dt', '', name));
        const dd = element('dd');
        dd.append(element(className === 'sha256' ? 'code' : 'span', className, String(value)));
        list.append(dd);
      }
      box.append(list);
      root.append(box);
    }
    const fields = Object.entries(description.fields || {});
    if (fields.length) {
      const list = element('dl', 'fields');
      for (const [name, values] of fields) {
        list.append(element('dt', '', name));
        list.append(element('dd', 'field-value', values.join(', ')));
      }
      root.append(list);
    }
    return root;
  }

  return {
    newIdentifier,
    statusUrl,
    formatBytes,
    formatDuration,
    Speedometer,
    showProgress,
    explain,
    renderDescription,
  };
})();
