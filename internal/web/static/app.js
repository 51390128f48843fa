// jobq dashboard: the few things that need a script. Every page works
// without it; it only keeps pages current.
//
//  - Pages whose <main> has data-refresh reload their #live region every
//    so many milliseconds (paused while the tab is hidden, while focus is
//    inside the region, while jobs are ticked, or by the "Live updates"
//    button), and fire "jobq:refreshed" on it after each try.
//  - A job page with data-events follows the job through server-sent
//    events: state changes and log lines as they happen.
(function () {
  'use strict';

  function $(sel, root) { return (root || document).querySelector(sel); }

  // ---- Refreshing live regions -------------------------------------
  var main = $('main[data-refresh]');
  var live = $('#live');
  if (main && live) {
    var every = parseInt(main.getAttribute('data-refresh'), 10) || 5000;
    var toggle = $('#refresh-toggle');
    var paused = false;
    var busy = false;
    if (toggle) {
      toggle.hidden = false;
      toggle.addEventListener('click', function () {
        paused = !paused;
        toggle.classList.toggle('paused', paused);
        toggle.textContent = paused ? 'Resume live updates' : 'Pause live updates';
      });
    }
    // keep: the region stays as it is while updates are paused, while
    // the user is in one of its controls, and while jobs are ticked for a
    // bulk action.
    var keep = function () {
      if (paused) { return true; }
      if (live.contains(document.activeElement) && document.activeElement !== document.body) { return true; }
      return !!live.querySelector('input[type="checkbox"]:checked');
    };
    var tick = function () {
      if (busy || document.hidden || keep()) { return; }
      busy = true;
      fetch(location.href, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
        .then(function (r) {
          if (!r.ok || r.redirected) { throw new Error('status ' + r.status); }
          return r.text();
        })
        .then(function (html) {
          // Asked again: the user may have ticked a job meanwhile.
          if (keep()) { return; }
          var doc = new DOMParser().parseFromString(html, 'text/html');
          var fresh = doc.getElementById('live');
          if (fresh) { live.innerHTML = fresh.innerHTML; }
        })
        .catch(function () { /* try again at the next tick */ })
        .then(function () {
          busy = false;
          live.dispatchEvent(new Event('jobq:refreshed'));
        });
    };
    setInterval(tick, every);
  }

  // ---- Following a job ----------------------------------------------
  var jobEl = $('#job[data-events]');
  if (!jobEl || !window.EventSource) { return; }
  var liveStatus = $('#live-status');
  var say = function (text) { if (liveStatus) { liveStatus.textContent = text; } };

  var setText = function (root, name, text) {
    var el = root && root.querySelector('[data-bind="' + name + '"]');
    if (el) { el.textContent = text; }
    return el;
  };
  var when = function (t) { return t && t.text ? t.text : '–'; };
  var setStatus = function (el, status) {
    if (!el) { return; }
    el.textContent = status;
    el.className = 'status status-' + status;
  };

  var applyState = function (s) {
    setStatus($('h1 [data-bind="status"]', jobEl), s.status);
    var facts = $('dl.facts', jobEl);
    setText(facts, 'priority', String(s.priority));
    setText(facts, 'start', when(s.start));
    setText(facts, 'end', when(s.end));
    setText(facts, 'duration', s.duration || '–');
    (s.ops || []).forEach(function (o, i) {
      var sec = document.getElementById('op-' + i);
      if (!sec) { return; }
      setStatus($('h3 [data-bind="status"]', sec), o.status);
      var f = $('dl.facts', sec);
      setText(f, 'priority', String(o.priority));
      setText(f, 'start', when(o.start));
      setText(f, 'exec', when(o.exec));
      setText(f, 'end', when(o.end));
      setText(f, 'duration', o.duration || '–');
      var res = $('[data-bind="result"]', sec);
      if (res) {
        res.textContent = o.result || 'no result';
        res.classList.toggle('empty', !o.result);
        res.classList.toggle('failed', o.status === 'error');
      }
    });
    if (s.final) { finished(); }
  };

  // A job that failed while followed gets the server's page of a failed
  // job: why it failed at the top, the failing opcode first and open.
  var redrawn = false;
  var redrawFailed = function () {
    var st = $('h1 [data-bind="status"]', jobEl);
    if (redrawn || !st || st.textContent !== 'error' || $('.alert.failure', jobEl)) { return; }
    redrawn = true;
    fetch(location.pathname, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
      .then(function (r) {
        if (!r.ok || r.redirected) { throw new Error('status ' + r.status); }
        return r.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, 'text/html').getElementById('job');
        if (!fresh) { throw new Error('no job'); }
        jobEl.innerHTML = fresh.innerHTML;
      })
      .catch(function () { say('This job failed: reload the page to see why.'); });
  };

  var finished = function () {
    Array.prototype.forEach.call(jobEl.querySelectorAll('[data-show="pending"]'), function (el) { el.hidden = true; });
    Array.prototype.forEach.call(jobEl.querySelectorAll('[data-show="final"]'), function (el) { el.hidden = false; });
    say('This job has finished.');
    redrawFailed();
  };

  var addLog = function (e) {
    var sec = document.getElementById('op-' + e.op);
    if (!sec) { return; }
    var body = $('.log tbody', sec);
    var row = document.createElement('tr');
    row.className = 'new';
    row.setAttribute('data-serial', String(e.serial));
    var cells = [String(e.serial), '', e.type, e.message];
    cells.forEach(function (text, k) {
      var td = document.createElement('td');
      if (k === 0) { td.className = 'num'; }
      if (k === 3) { td.className = 'msg'; }
      if (k === 1) {
        if (e.time && e.time.iso) {
          var t = document.createElement('time');
          t.setAttribute('datetime', e.time.iso);
          t.textContent = e.time.text;
          td.appendChild(t);
        } else { td.textContent = '–'; }
      } else {
        td.textContent = text;
      }
      row.appendChild(td);
    });
    body.appendChild(row);
    var empty = $('.empty-log', sec);
    if (empty) { empty.hidden = true; }
    var box = $('.log', sec);
    if (box) { box.scrollTop = box.scrollHeight; }
  };

  var es = new EventSource(jobEl.getAttribute('data-events'));
  es.addEventListener('open', function () { say('This page follows the job as it runs.'); });
  es.addEventListener('state', function (m) { applyState(JSON.parse(m.data)); });
  es.addEventListener('log', function (m) {
    var e = JSON.parse(m.data);
    if (!document.querySelector('#op-' + e.op + ' tr[data-serial="' + e.serial + '"]')) { addLog(e); }
  });
  es.addEventListener('end', function () { es.close(); finished(); });
  es.addEventListener('failed', function (m) { es.close(); say('Following the job failed: ' + JSON.parse(m.data)); });
  es.addEventListener('gone', function () { es.close(); say('This job no longer exists.'); });
  es.addEventListener('error', function () {
    if (es.readyState === EventSource.CLOSED) {
      say('Live updates stopped; reload the page to follow the job again.');
    } else {
      say('Connection lost; reconnecting…');
    }
  });
})();
