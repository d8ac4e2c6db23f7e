/* sluice dashboard. Every value from Redis goes into the page as text
 * (textContent, createTextNode, attribute values), never as HTML: stream
 * entries, names and errors are written by anyone who can XADD. */
'use strict';
(function () {
  var csrf = (document.querySelector('meta[name="sluice-csrf"]') || {}).content || '';
  var info = { mode: 'web', allow_writes: false, streams: [] };
  var timer = null, paused = false, auto = false, busy = false;
  var main = document.getElementById('main');
  var status = document.getElementById('status');
  var SVGNS = 'http://www.w3.org/2000/svg';

  function el(tag, attrs, kids) {
    var e = document.createElement(tag), k;
    for (k in attrs || {}) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'on') e.addEventListener(attrs[k][0], attrs[k][1]);
      else e.setAttribute(k, attrs[k]);
    }
    (kids || []).forEach(function (c) {
      if (c !== null && c !== undefined)
        e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return e;
  }
  function td(v, cls) { return el('td', { text: v === null || v === undefined ? '-' : String(v), 'class': cls || '' }); }
  function q(o) {
    return Object.keys(o).filter(function (k) { return o[k] !== undefined && o[k] !== null && o[k] !== ''; })
      .map(function (k) { return encodeURIComponent(k) + '=' + encodeURIComponent(o[k]); }).join('&');
  }
  function num(v, d) { return v === null || v === undefined ? '-' : Number(v).toFixed(d); }
  function dur(ms) {
    if (ms === null || ms === undefined || ms < 0) return '-';
    if (ms < 1000) return ms + ' ms';
    var s = ms / 1000;
    if (s < 60) return s.toFixed(1) + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' m ' + Math.floor(s % 60) + ' s';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' m';
    return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
  }
  function when(ms) { return ms ? new Date(ms).toISOString().replace('T', ' ').replace(/\..*/, '') : '-'; }

  function api(path) {
    return fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (j) {
          if (!r.ok) throw new Error((j && j.error) || (r.status + ' ' + r.statusText));
          return j;
        });
      });
  }
  function post(path, body) {
    return fetch(path, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-Sluice-Token': csrf },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) throw new Error((j && j.error) || (r.status + ' ' + r.statusText));
        return j;
      });
    });
  }

  function route() {
    var h = location.hash.replace(/^#/, '') || '/';
    var i = h.indexOf('?'), path = i < 0 ? h : h.slice(0, i), params = {};
    if (i >= 0) h.slice(i + 1).split('&').forEach(function (kv) {
      var j = kv.indexOf('=');
      if (j > 0) params[decodeURIComponent(kv.slice(0, j))] = decodeURIComponent(kv.slice(j + 1));
    });
    return { path: path, p: params };
  }
  function setNav(path) {
    ['overview', 'dead', 'workers'].forEach(function (n) {
      var a = document.getElementById('nav-' + n);
      var on = (n === 'overview' && (path === '/' || path === '/group')) || path.indexOf('/' + n) === 0;
      a.className = on ? 'on' : '';
    });
  }
  function show(nodes) {
    while (main.firstChild) main.removeChild(main.firstChild);
    nodes.forEach(function (n) { if (n) main.appendChild(n); });
  }
  function showError(e) {
    status.textContent = 'error: ' + e.message;
    status.className = 'err';
  }
  function ok() {
    status.textContent = 'updated ' + new Date().toLocaleTimeString();
    status.className = 'muted';
  }

  /* A chart of λ and μ per minute over the last hour, inline SVG. */
  function chart(c, w, h) {
    var svg = document.createElementNS(SVGNS, 'svg');
    svg.setAttribute('class', 'chart');
    svg.setAttribute('width', w); svg.setAttribute('height', h);
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
    svg.setAttribute('role', 'img');
    var t = (c && c.t) || [], max = 0, now = Date.now(), t0 = now - 3600000;
    (c && c.lambda || []).concat(c && c.mu || []).forEach(function (v) { if (v > max) max = v; });
    var label = document.createElementNS(SVGNS, 'title');
    label.textContent = t.length ? 'λ and μ per minute, last hour; max ' + max.toFixed(2) + '/s' : 'no rate samples yet';
    svg.appendChild(label);
    var ax = document.createElementNS(SVGNS, 'line');
    ax.setAttribute('class', 'ax'); ax.setAttribute('x1', 0); ax.setAttribute('x2', w);
    ax.setAttribute('y1', h - 0.5); ax.setAttribute('y2', h - 0.5);
    svg.appendChild(ax);
    [['lambda', 'l'], ['mu', 'm']].forEach(function (s) {
      var pts = [];
      (c && c[s[0]] || []).forEach(function (v, i) {
        if (v === null) return;
        var x = ((t[i] - t0) / 3600000) * w, y = h - 1 - (max > 0 ? (v / max) * (h - 3) : 0);
        pts.push(Math.max(0, x).toFixed(1) + ',' + y.toFixed(1));
      });
      if (!pts.length) return;
      var pl = document.createElementNS(SVGNS, 'polyline');
      pl.setAttribute('class', s[1]);
      pl.setAttribute('points', pts.join(' '));
      svg.appendChild(pl);
    });
    return svg;
  }

  function codes(dc) {
    var span = el('span', { 'class': 'codes' });
    Object.keys(dc || {}).sort().forEach(function (k) {
      span.appendChild(el('span', { text: (k || '(none)') + ' ' + dc[k] }));
    });
    return span;
  }

  function overview() {
    return api('/api/overview').then(function (d) {
      var head = ['Stream', 'Group', 'Length', 'Lag', 'Pending', 'Oldest pending', 'Consumers',
        'Dead', 'By code (latest)', 'λ/s', 'μ/s', 'ρ', 'L', 'W', 'Last hour', 'Attention'];
      var tb = el('tbody');
      (d.rows || []).forEach(function (r) {
        var att = r.attention || [];
        var bad = att.indexOf('rho > 1') >= 0 || att.indexOf('no live consumer') >= 0;
        var tr = el('tr', { 'class': bad ? 'bad' : att.length ? 'attn' : '' });
        tr.appendChild(el('td', { 'class': 't' }, [el('a', { href: '#/dead?' + q({ stream: r.stream }), text: r.stream })]));
        if (r.group === null)
          tr.appendChild(td(r.exists ? '(no group)' : '(no such stream)', 't'));
        else
          tr.appendChild(el('td', { 'class': 't' }, [el('a', { href: '#/group?' + q({ stream: r.stream, group: r.group }), text: r.group })]));
        tr.appendChild(td(r.length));
        tr.appendChild(td(r.lag));
        tr.appendChild(td(r.pending));
        tr.appendChild(td(dur(r.oldest_pending_ms)));
        tr.appendChild(td(r.consumers === undefined ? null : (r.live_workers !== undefined ? r.live_workers + ' live / ' : '') + r.consumers));
        tr.appendChild(td(r.dead));
        tr.appendChild(el('td', { 'class': 't wr' }, [codes(r.dead_codes)]));
        tr.appendChild(td(num(r.lambda, 2)));
        tr.appendChild(td(num(r.mu, 2)));
        tr.appendChild(td(num(r.rho, 2)));
        tr.appendChild(td(r.L));
        tr.appendChild(td(r.W === null || r.W === undefined ? '-' : dur(Math.round(r.W * 1000))));
        tr.appendChild(el('td', {}, [r.group === null ? null : chart(r.chart, 96, 24)]));
        tr.appendChild(el('td', { 'class': 't wr' }, att.map(function (a) { return el('span', { 'class': 'tag', text: a }); })));
        [].forEach.call(tr.cells, function (c, i) { c.setAttribute('data-label', head[i]); });
        tb.appendChild(tr);
      });
      var table = el('table', { id: 'overview', 'class': 'cards' }, [el('thead', {}, [el('tr', {}, head.map(function (h, i) {
        return el('th', { text: h, 'class': i < 2 || i === 8 || i > 13 ? 't' : '' });
      }))]), tb]);
      show([el('h2', { text: 'Streams and groups' }),
        el('p', { 'class': 'muted' }, ['Chart: ', el('span', { 'class': 'key-l', text: 'λ arrivals' }), ' and ',
          el('span', { 'class': 'key-m', text: 'μ acks' }), ' per second, one point a minute. ',
          d.truncated ? 'Some rows were left out (too many).' : '']),
        el('div', { 'class': 'wrap' }, [table])]);
    });
  }

  function group(p) {
    if (info.mode === 'pool')
      return Promise.resolve(show([el('p', { 'class': 'note', text: 'The group page is served by `sluice web`; the pool shows the overview and workers only.' })]));
    return api('/api/group?' + q({ stream: p.stream, group: p.group, count: 50 })).then(function (d) {
      var c = el('tbody'), o = el('tbody');
      d.consumers.forEach(function (x) {
        c.appendChild(el('tr', {}, [td(x.name, 't'), td(x.pending), td(dur(x.idle_ms)), td(dur(x.inactive_ms)),
          td(x.beat_age_ms === null ? 'no heartbeat' : dur(x.beat_age_ms) + ' ago'), td(x.host, 't'), td(x.pid)]));
      });
      d.oldest_pending.forEach(function (x) {
        o.appendChild(el('tr', {}, [td(x.id, 't'), td(x.consumer, 't'), td(dur(x.idle_ms)), td(x.deliveries)]));
      });
      if (!d.oldest_pending.length) o.appendChild(el('tr', {}, [el('td', { 'class': 't muted', colspan: '4', text: 'No pending entries.' })]));
      show([el('h2', {}, ['Group ', el('code', { text: d.group }), ' of ', el('code', { text: d.stream })]),
        el('h2', { text: 'Consumers' }),
        el('div', { 'class': 'wrap' }, [el('table', { id: 'consumers' }, [el('thead', {}, [el('tr', {}, ['Consumer', 'Pending', 'Idle', 'Inactive', 'Last beat', 'Host', 'PID'].map(function (h, i) { return el('th', { text: h, 'class': i === 0 || i === 5 ? 't' : '' }); }))]), c])]),
        el('h2', { text: 'Oldest pending entries' }),
        el('div', { 'class': 'wrap' }, [el('table', { id: 'pending' }, [el('thead', {}, [el('tr', {}, ['ID', 'Consumer', 'Idle', 'Deliveries'].map(function (h, i) { return el('th', { text: h, 'class': i < 2 ? 't' : '' }); }))]), o])])]);
    });
  }

  function workers() {
    return api('/api/workers').then(function (d) {
      var tb = el('tbody');
      d.sort(function (a, b) { return a.consumer < b.consumer ? -1 : a.consumer > b.consumer ? 1 : 0; });
      d.forEach(function (w) {
        tb.appendChild(el('tr', {}, [td(w.consumer, 't'), td(w.host, 't'), td(w.pid), td(w.handler, 't'),
          td(w.stream + ' / ' + w.group, 't'), td(dur(w.uptime_ms)), td(w.beat_age_ms === null ? '-' : dur(w.beat_age_ms) + ' ago'),
          td(w.processed), td(w.failed)]));
      });
      show([el('h2', { text: 'Workers (' + d.length + ' live heartbeats)' }),
        el('div', { 'class': 'wrap' }, [el('table', { id: 'workers' }, [el('thead', {}, [el('tr', {}, ['Consumer', 'Host', 'PID', 'Handler', 'Stream / group', 'Uptime', 'Last beat', 'Processed', 'Failed'].map(function (h, i) { return el('th', { text: h, 'class': i === 0 || i === 1 || i === 3 || i === 4 ? 't' : '' }); }))]), tb])])]);
    });
  }

  function streamPicker(cur) {
    var s = el('select', { name: 'stream' });
    info.streams.forEach(function (n) {
      var o = el('option', { value: n, text: n });
      if (n === cur) o.selected = true;
      s.appendChild(o);
    });
    return s;
  }

  function dead(p) {
    if (info.mode === 'pool')
      return Promise.resolve(show([el('p', { 'class': 'note', text: 'Dead letters are browsed with `sluice web`; the overview shows their counts by code.' })]));
    var stream = p.stream || info.streams[0];
    if (!stream) return Promise.resolve(show([el('p', { text: 'No streams configured.' })]));
    return api('/api/dead?' + q({ stream: stream, cursor: p.cursor, code: p.code, count: 50 })).then(function (d) {
      var form = el('form', { 'class': 'inline', id: 'dead-filter' });
      var sp = streamPicker(stream), code = el('input', { name: 'code', placeholder: 'code', value: p.code || '' });
      form.appendChild(el('label', { text: 'Stream' })); form.appendChild(sp);
      form.appendChild(code);
      form.appendChild(el('button', { type: 'submit', text: 'Filter' }));
      form.addEventListener('submit', function (ev) { ev.preventDefault(); location.hash = '#/dead?' + q({ stream: sp.value, code: code.value }); });
      var find = el('form', { 'class': 'inline', id: 'dead-find' });
      var id = el('input', { name: 'id', placeholder: 'exact ID, e.g. 1700000000000-0' });
      find.appendChild(id); find.appendChild(el('button', { type: 'submit', text: 'Find' }));
      find.addEventListener('submit', function (ev) { ev.preventDefault(); location.hash = '#/entry?' + q({ stream: sp.value, id: id.value.trim() }); });
      var tb = el('tbody');
      if (!d.items.length) tb.appendChild(el('tr', {}, [el('td', { 'class': 't muted', colspan: '7', text: 'No dead letters here.' })]));
      d.items.forEach(function (x) {
        var tr = el('tr', {}, [el('td', { 'class': 't' }, [el('a', { href: '#/entry?' + q({ stream: stream, id: x.id }), text: x.id })]),
          td(x.code, 't'), td(x.error, 't'), td(x.type, 't'), td(x.deliveries), td(when(x.failed_at)),
          el('td', { 'class': 'wrapok hide-sm', text: (x.data_preview || '') + (x.data_bytes > (x.data_preview || '').length ? ' …' : '') })]);
        tb.appendChild(tr);
      });
      var nodes = [el('h2', { text: 'Dead letters of ' + stream + ' (' + d.total + ')' }), form, find,
        el('div', { 'class': 'wrap' }, [el('table', { id: 'dead' }, [el('thead', {}, [el('tr', {}, ['ID', 'Code', 'Error', 'Type', 'Deliveries', 'Failed at', 'Data'].map(function (h, i) { return el('th', { text: h, 'class': i === 4 || i === 5 ? '' : 't' }); }))]), tb])])];
      if (d.next_cursor)
        nodes.push(el('p', {}, [el('a', { id: 'next', href: '#/dead?' + q({ stream: stream, code: p.code, cursor: d.next_cursor }), text: 'Next page →' })]));
      else
        nodes.push(el('p', { 'class': 'muted', text: 'End of the dead letters.' }));
      if (info.allow_writes && p.code) {
        nodes.push(el('button', { 'class': 'danger', id: 'purge-code', type: 'button', text: 'Purge every ' + p.code + ' dead letter', on: ['click', function () {
          if (!confirm('Purge every dead letter with code ' + p.code + ' from ' + stream + '?')) return;
          purgeCode(stream, p.code, '', '', 0);
        }] }));
      }
      show(nodes);
    });
  }
  function purgeCode(stream, code, cursor, until, total) {
    status.textContent = 'purging… ' + total;
    post('/api/dead/purge', { stream: stream, code: code, cursor: cursor, until: until }).then(function (r) {
      total += r.purged;
      if (!r.done) return purgeCode(stream, code, r.cursor, r.until, total);
      status.textContent = 'purged ' + total;
      render();
    }).catch(showError);
  }

  function entry(p) {
    if (info.mode === 'pool') return dead(p);
    return api('/api/dead/entry?' + q({ stream: p.stream, id: p.id })).then(function (d) {
      var dl = el('dl', { 'class': 'fields', id: 'entry' }), data = '';
      d.fields.forEach(function (f) {
        if (f[0] === 'data') data = f[1];
        dl.appendChild(el('dt', { text: f[0] }));
        dl.appendChild(el('dd', { text: f[1] }));
      });
      var nodes = [el('h2', {}, ['Dead letter ', el('code', { text: d.id }), ' of ', el('code', { text: d.stream })]), dl];
      if (info.allow_writes) {
        var ta = el('textarea', { id: 'data', name: 'data' });
        ta.value = data;
        var msg = el('p', { id: 'result', 'class': 'muted' });
        function done(r) { msg.textContent = r.new_id ? 'replayed as ' + r.new_id : 'purged'; msg.className = 'muted'; }
        function bad(e) { msg.textContent = e.message; msg.className = 'err'; }
        nodes.push(el('p', {}, [
          el('button', { id: 'replay', type: 'button', text: 'Replay', on: ['click', function () {
            post('/api/dead/replay', { stream: d.stream, id: d.id }).then(done, bad);
          }] }), ' ',
          el('button', { 'class': 'danger', id: 'purge', type: 'button', text: 'Purge', on: ['click', function () {
            if (confirm('Delete dead letter ' + d.id + '?')) post('/api/dead/purge', { stream: d.stream, id: d.id }).then(done, bad);
          }] })]));
        nodes.push(el('h2', { text: 'Replay with corrected data' }), ta,
          el('p', {}, [el('button', { id: 'replay-data', type: 'button', text: 'Replay with this data', on: ['click', function () {
            post('/api/dead/replay', { stream: d.stream, id: d.id, data: ta.value }).then(done, bad);
          }] })]), msg);
      } else {
        nodes.push(el('p', { 'class': 'note muted', text: 'Read-only: start `sluice web --allow-writes` to replay or purge.' }));
      }
      show(nodes);
    });
  }

  var pages = { '/': overview, '/group': group, '/workers': workers, '/dead': dead, '/entry': entry };
  var live = { '/': 1, '/group': 1, '/workers': 1 };

  function render() {
    var r = route(), f = pages[r.path] || overview;
    if (busy) return;
    busy = true;
    setNav(r.path);
    auto = !!live[r.path];
    f(r.p).then(ok, showError).then(function () { busy = false; schedule(); });
  }
  function schedule() {
    if (timer) clearTimeout(timer);
    timer = null;
    if (!paused && auto)
      timer = setTimeout(render, Math.max(2000, Number(document.getElementById('interval').value) || 5000));
  }
  document.getElementById('pause').addEventListener('click', function () {
    paused = !paused;
    this.textContent = paused ? 'Resume' : 'Pause';
    schedule();
  });
  document.getElementById('interval').addEventListener('change', schedule);
  window.addEventListener('hashchange', function () { busy = false; render(); });

  api('/api/info').then(function (i) {
    info = i;
    document.getElementById('footer').textContent = 'sluice ' + i.version + ' · ' +
      (i.mode === 'pool' ? 'pool listener, read-only' : i.allow_writes ? 'writes allowed' : 'read-only') +
      ' · ' + i.streams.length + ' streams';
  }).catch(showError).then(render);
})();
