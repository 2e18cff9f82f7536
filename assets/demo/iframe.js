// The iframe transport, as the original's browser clients use it: the
// browser itself posts a plain form into a hidden iframe; this script only
// gives the form an identifier, follows the progress by JSONP (a script tag
// per poll, which works where cross-origin XMLHttpRequest does not), and
// reads the description from the data attributes of the page that the
// server answers into the iframe.
'use strict';

(function () {
  const demo = window.FileuploadDemo;
  const POLL_MS = 250;

  const form = document.getElementById('form');
  const send = document.getElementById('send');
  const transport = document.getElementById('transport');
  const upload = document.getElementById('upload');
  const message = document.getElementById('message');
  const description = document.getElementById('description');
  const announce = document.getElementById('announce');
  const view = {
    bar: document.getElementById('bar'),
    percent: document.getElementById('percent'),
    speed: document.getElementById('speed'),
    eta: document.getElementById('eta'),
  };

  let current = null;
  let sequence = 0;

  // One JSONP request: `onData` gets the status; `onSettled` runs once the
  // script is done with, whether or not it called back.
  function jsonp(url, onData, onSettled) {
    sequence += 1;
    const name = 'fileuploadStatus' + sequence;
    const script = document.createElement('script');
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      delete window[name];
      script.remove();
      onSettled();
    };
    window[name] = (data) => {
      onData(data);
      settle();
    };
    script.addEventListener('load', settle);
    script.addEventListener('error', settle);
    script.src = url + '&callback=' + name;
    document.head.append(script);
  }

  function poll(run) {
    if (run.finished) return;
    jsonp(
      demo.statusUrl(run.id),
      (status) => show(run, status),
      () => {
        if (!run.finished) run.timer = setTimeout(() => poll(run), POLL_MS);
      },
    );
  }

  function show(run, status) {
    if (run.finished) return;
    upload.dataset.jsonpPolls = String((Number(upload.dataset.jsonpPolls) || 0) + 1);
    if (status.state === 'error') {
      fail(run, status.status, status.error);
    } else if (status.state === 'done') {
      // The description itself is read from the iframe when its page loads.
      view.bar.value = 100;
      view.percent.textContent = '100%';
    } else {
      demo.showProgress(status, view, run.speedometer);
    }
  }

  function stop(run, state) {
    run.finished = true;
    clearTimeout(run.timer);
    upload.dataset.state = state;
    send.disabled = false;
    view.eta.textContent = '';
  }

  function fail(run, code, text) {
    if (run.finished) return;
    stop(run, 'error');
    upload.dataset.status = String(code || 0);
    message.textContent = demo.explain(code, text);
    message.hidden = false;
  }

  function complete(run, info, identifier) {
    if (run.finished) return;
    stop(run, 'done');
    view.bar.value = 100;
    const took = (performance.now() - run.started) / 1000;
    view.percent.textContent = '100%: ' + demo.formatBytes(info.received) + ' in ' + demo.formatDuration(took);
    view.speed.textContent = '';
    upload.dataset.identifier = identifier;
    upload.dataset.source = 'iframe';
    description.replaceChildren(demo.renderDescription(info));
    description.hidden = false;
    announce.textContent = 'Upload complete';
  }

  // The page in the iframe: the description in data attributes on success,
  // the JSON error (shown by the browser as text) otherwise.
  function answered(run) {
    let body = null;
    try {
      body = transport.contentDocument && transport.contentDocument.body;
    } catch (e) {
      body = null;
    }
    if (!body) {
      // A browser error page (the server closed the connection, say over
      // the size limit): the status tells why.
      jsonp(
        demo.statusUrl(run.id),
        (status) => fail(run, status.state === 'error' ? status.status : 0, status.error || 'the connection was lost'),
        () => fail(run, 0, 'the connection was lost'),
      );
      return;
    }
    const info = body.getAttribute('data-upload-info');
    let parsed = null;
    try {
      parsed = JSON.parse(info !== null ? info : body.textContent);
    } catch (e) {
      parsed = null;
    }
    if (info !== null && parsed) {
      complete(run, parsed, body.getAttribute('data-upload-identifier'));
    } else if (parsed && parsed.state === 'error') {
      fail(run, parsed.status, parsed.error);
    } else {
      fail(run, 0, 'the server gave an answer this page does not understand');
    }
  }

  form.addEventListener('submit', () => {
    // Not prevented: the browser posts the form into the iframe. The action
    // is read after this event, so the identifier set here goes with it.
    const run = {
      id: demo.newIdentifier(),
      finished: false,
      timer: null,
      started: performance.now(),
      speedometer: new demo.Speedometer(),
    };
    if (current) stop(current, current.finished ? upload.dataset.state : 'error');
    current = run;
    form.action = 'upload?X-Progress-ID=' + encodeURIComponent(run.id);
    upload.dataset.state = 'uploading';
    upload.dataset.identifier = run.id;
    delete upload.dataset.source;
    delete upload.dataset.status;
    upload.dataset.jsonpPolls = '0';
    message.hidden = true;
    description.hidden = true;
    view.bar.value = 0;
    view.percent.textContent = 'Starting…';
    view.speed.textContent = '';
    announce.textContent = 'Uploading';
    // Disabled only once the submission has taken the form's data.
    setTimeout(() => {
      if (!run.finished) send.disabled = true;
    }, 0);
    poll(run);
  });

  transport.addEventListener('load', () => {
    // The first load is the iframe's initial empty page.
    if (current && !current.finished) answered(current);
  });
})();
