// scrubgate console: plain ES2020, no framework, no build step.
//
// Served under `Content-Security-Policy: default-src 'self'`: no inline scripts or
// handlers, no eval, no inline style attributes. Untrusted text (everything that comes
// from the API or the editors) only ever reaches the page through textContent, input
// values and attribute setters, never innerHTML.
//
// URLs are relative (`api/status`, `console.css`), so the console also works behind a
// reverse proxy that serves the admin listener under a path prefix ending in `/`.
// The admin token lives in sessionStorage under `scrubgate-admin-token` (this tab only;
// no cookies) and is sent as `Authorization: Bearer <token>`.
'use strict';

(() => {
  const TOKEN_KEY = 'scrubgate-admin-token';
  const STATUS_POLL_MS = 10000;
  const REMARK_TYPES = {
    a: 'annotated',
    x: 'removed',
    s: 'substituted',
    m: 'masked',
    p: 'pseudonymized',
    e: 'encrypted',
  };
  const SAMPLE_ENVELOPE = [
    '{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","dsn":"http://public@127.0.0.1:3000/42"}',
    '{"type":"event"}',
    '{"message":"payment failed for jane@example.com","user":{"email":"jane@example.com"}}',
    '',
  ].join('\n');

  const state = {
    projects: [],
    details: new Map(), // project id (string) -> GET /api/projects/{id}
    selected: null, // project id (string) whose detail is open
    authShown: false,
    defaultEventInput: '',
    lastScrub: null,
  };

  // ---------------------------------------------------------------- helpers

  const $ = (id) => document.getElementById(id);

  /** Creates an element. `props`: className, text, attrs {}, dataset {}, on {event: fn}. */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      if (props.className) node.className = props.className;
      if (props.id) node.id = props.id;
      if (props.text !== undefined && props.text !== null) node.textContent = String(props.text);
      if (props.title) node.title = String(props.title);
      if (props.type) node.type = props.type;
      if (props.attrs) {
        for (const [k, v] of Object.entries(props.attrs)) {
          if (v !== undefined && v !== null && v !== false) node.setAttribute(k, String(v));
        }
      }
      if (props.dataset) {
        for (const [k, v] of Object.entries(props.dataset)) node.dataset[k] = String(v);
      }
      if (props.on) {
        for (const [k, fn] of Object.entries(props.on)) node.addEventListener(k, fn);
      }
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function setMessage(node, text, kind) {
    node.textContent = text || '';
    node.classList.remove('ok', 'bad');
    if (kind) node.classList.add(kind);
  }

  function formatBytes(n) {
    if (typeof n !== 'number' || !isFinite(n)) return String(n);
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i += 1;
    }
    return (i === 0 ? String(v) : v.toFixed(v < 10 ? 1 : 0)) + ' ' + units[i];
  }

  function plural(n, word) {
    return n + ' ' + word + (n === 1 ? '' : 's');
  }

  function pretty(value) {
    return JSON.stringify(value, null, 2);
  }

  function isPlainObject(v) {
    return v !== null && typeof v === 'object' && !Array.isArray(v);
  }

  /** An error row: the file (reload errors name it), the JSON path, then the message. */
  function errorItem(err, tag) {
    const file = err && err.file ? String(err.file) : '';
    const path = err && err.path ? String(err.path) : '';
    const message = err && err.message !== undefined ? String(err.message) : String(err);
    const node = el(tag || 'li', { className: 'error' });
    if (file) node.append(el('span', { className: 'file', text: file + ':' }));
    if (path) node.append(el('span', { className: 'path', text: path }));
    node.append(el('span', { className: 'error-message', text: message }));
    return node;
  }

  // ------------------------------------------------------------------ token

  let memoryToken = '';

  function getToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || '';
    } catch (_) {
      return '';
    }
  }

  function setToken(token) {
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) {
      // Storage disabled: the token lasts until the page is left.
      memoryToken = token;
    }
    updateTokenState();
  }

  function currentToken() {
    return getToken() || memoryToken;
  }

  function updateTokenState() {
    $('token-state').textContent = currentToken() ? 'token set' : 'no token';
  }

  function showAuth(detail, status) {
    const banner = $('auth-message');
    const reason = detail || (status === 403 ? 'forbidden' : 'unauthorized');
    const ask = currentToken()
      ? 'The saved admin token was refused: enter the right one above.'
      : 'Enter the admin token above.';
    banner.textContent = reason + ' (HTTP ' + status + '). ' + ask;
    banner.hidden = false;
    $('token-form').classList.add('needs-token');
    if (!state.authShown) {
      state.authShown = true;
      $('token-input').focus();
    }
  }

  function hideAuth() {
    if (!state.authShown) return;
    state.authShown = false;
    $('auth-message').hidden = true;
    $('token-form').classList.remove('needs-token');
  }

  // -------------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, data, message) {
      super(message);
      this.status = status;
      this.data = data;
      this.errors = data && Array.isArray(data.errors) ? data.errors : null;
      this.detail = data && typeof data.detail === 'string' ? data.detail : null;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    const init = { method, headers, credentials: 'omit', cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const token = currentToken();
    if (token) headers.Authorization = 'Bearer ' + token;
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, null, 'cannot reach scrubgate: ' + (e && e.message ? e.message : e));
    }
    const text = await resp.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = null;
      }
    }
    if (resp.status === 401 || resp.status === 403) {
      const detail = data && typeof data.detail === 'string' ? data.detail : '';
      showAuth(detail, resp.status);
      throw new ApiError(resp.status, data, detail || 'HTTP ' + resp.status);
    }
    if (!resp.ok) {
      let message = 'HTTP ' + resp.status;
      if (data && typeof data.detail === 'string') message = data.detail;
      else if (data && Array.isArray(data.errors)) message = plural(data.errors.length, 'error');
      throw new ApiError(resp.status, data, message);
    }
    if (data === null) throw new ApiError(resp.status, null, 'the server answered no JSON');
    hideAuth();
    return data;
  }

  // ----------------------------------------------------------------- status

  async function loadStatus() {
    const upstream = $('status-upstream');
    const spool = $('status-spool');
    let data;
    try {
      data = await api('GET', 'api/status');
    } catch (e) {
      upstream.textContent = e.status === 401 || e.status === 403 ? 'locked' : 'unknown';
      upstream.className = 'pill';
      upstream.title = e.message;
      spool.textContent = '–';
      spool.className = 'pill';
      return;
    }
    const st = data.upstream && data.upstream.state ? String(data.upstream.state) : 'unknown';
    upstream.textContent = st;
    upstream.title = st === 'outbox' ? 'no upstream set: requests are written to the outbox' : '';
    upstream.className =
      'pill ' + ({ up: 'ok', outbox: 'ok', probing: 'warn', down: 'bad' }[st] || '');
    if (data.spool && typeof data.spool === 'object') {
      const entries = Number(data.spool.entries) || 0;
      spool.textContent = entries + (entries === 1 ? ' entry' : ' entries') + ' · ' +
        formatBytes(Number(data.spool.bytes) || 0);
      spool.className = 'pill ' + (entries > 0 ? 'warn' : 'ok');
    } else {
      spool.textContent = 'off';
      spool.className = 'pill';
    }
  }

  // --------------------------------------------------------------- projects

  function projectKey(id) {
    return String(id);
  }

  function projectById(id) {
    return state.projects.find((p) => projectKey(p.id) === projectKey(id)) || null;
  }

  function apiProjectId(id) {
    const s = String(id);
    return /^\d+$/.test(s) ? Number(s) : s;
  }

  async function loadProjects() {
    const msg = $('projects-message');
    try {
      const data = await api('GET', 'api/projects');
      state.projects = Array.isArray(data.projects) ? data.projects.slice() : [];
      state.projects.sort((a, b) => (Number(a.id) - Number(b.id)) || String(a.id).localeCompare(String(b.id)));
      setMessage(msg, state.projects.length ? '' : 'No projects are loaded.');
    } catch (e) {
      setMessage(msg, 'Projects: ' + e.message, 'bad');
      return;
    }
    renderProjects();
    fillProjectSelects();
  }

  function tagList(values, emptyText) {
    const list = el('span', { className: 'tags' });
    if (!values || !values.length) {
      list.append(el('span', { className: 'muted', text: emptyText || 'none' }));
    }
    for (const v of values || []) list.append(el('span', { className: 'tag', text: v }));
    return list;
  }

  function hitsTable(hits, shadow) {
    hits = isPlainObject(hits) ? hits : {};
    shadow = isPlainObject(shadow) ? shadow : {};
    const rules = Array.from(new Set([...Object.keys(hits), ...Object.keys(shadow)]));
    if (!rules.length) return el('span', { className: 'muted', text: 'no hits yet' });
    rules.sort((a, b) => ((hits[b] || 0) + (shadow[b] || 0)) - ((hits[a] || 0) + (shadow[a] || 0)) || a.localeCompare(b));
    const tbody = el('tbody');
    for (const rule of rules) {
      tbody.append(
        el('tr', { dataset: { rule } },
          el('td', null, el('code', { text: rule })),
          el('td', { className: 'num hits', text: hits[rule] || 0 }),
          el('td', { className: 'num shadow-hits', text: shadow[rule] || 0 }),
        ),
      );
    }
    return el('table', { className: 'hits-table' },
      el('thead', null, el('tr', null,
        el('th', { text: 'rule' }),
        el('th', { className: 'num', text: 'hits' }),
        el('th', { className: 'num', text: 'shadow', title: 'matches of shadow rules (counted, not applied)' }),
      )),
      tbody,
    );
  }

  function renderProjects() {
    const root = clear($('projects'));
    for (const p of state.projects) {
      const key = projectKey(p.id);
      const reload = isPlainObject(p.reload) ? p.reload : {};
      const ok = reload.result === 'ok';
      const card = el('article', {
        className: 'project-card' + (state.selected === key ? ' selected' : ''),
        id: 'project-' + key,
        dataset: { project: key },
        on: { click: (ev) => {
          if (ev.target.closest('a, input, select, textarea')) return;
          if (window.getSelection && String(window.getSelection()).length) return;
          openProject(key);
        } },
      });
      const head = el('div', { className: 'card-head' },
        el('button', { className: 'project-open', type: 'button', text: 'Project ' + key,
          attrs: { 'aria-label': 'Open project ' + key } }),
        el('span', {
          className: 'pill reload ' + (ok ? 'ok' : reload.result ? 'bad' : ''),
          text: reload.result ? 'reload ' + reload.result : 'reload unknown',
        }),
      );
      const dl = el('dl', null,
        el('dt', { text: 'keys' }), el('dd', { className: 'keys' }, tagList(p.keys, 'no keys')),
        el('dt', { text: 'rules' }), el('dd', { className: 'rule-count', text: p.rule_count ?? '–' }),
        el('dt', { text: 'coverage' }), el('dd', { className: 'coverage', text: p.coverage ?? '–' }),
        el('dt', { text: 'protect' }), el('dd', { className: 'protect' }, tagList(p.protect, 'nothing')),
      );
      card.append(head, dl);
      const errs = Array.isArray(reload.errors) ? reload.errors : [];
      if (errs.length) {
        const ul = el('ul', { className: 'errors reload-errors' });
        for (const e of errs) ul.append(errorItem(e));
        card.append(el('div', { className: 'muted', text: 'last reload failed; the previous rules stay in force:' }), ul);
      }
      card.append(hitsTable(p.hits, p.shadow_hits));
      root.append(card);
    }
  }

  function fillProjectSelects() {
    for (const [id, allowNone] of [['playground-project', true], ['pseudonym-project', false]]) {
      const sel = $(id);
      const prev = sel.value;
      clear(sel);
      if (allowNone) sel.append(el('option', { text: '(none)', attrs: { value: '' } }));
      for (const p of state.projects) {
        sel.append(el('option', { text: 'project ' + p.id, attrs: { value: projectKey(p.id) } }));
      }
      const want = prev || (allowNone ? '' : state.selected || '');
      if (want && Array.from(sel.options).some((o) => o.value === want)) sel.value = want;
    }
  }

  async function getProjectDetail(id, fresh) {
    const key = projectKey(id);
    if (!fresh && state.details.has(key)) return state.details.get(key);
    const data = await api('GET', 'api/projects/' + encodeURIComponent(key));
    state.details.set(key, data);
    return data;
  }

  async function openProject(id) {
    const key = projectKey(id);
    state.selected = key;
    for (const card of document.querySelectorAll('.project-card')) {
      card.classList.toggle('selected', card.dataset.project === key);
    }
    $('project-detail').hidden = false;
    $('project-detail-title').textContent = 'Project ' + key;
    setMessage($('project-detail-message'), 'Loading…');
    clear($('applied-rules'));
    $('project-config').textContent = '';
    clear($('samples')).append(el('p', { className: 'muted', text: 'Loading samples…' }));
    const detail = getProjectDetail(key, true).then(renderProjectDetail, (e) => {
      setMessage($('project-detail-message'), 'Project ' + key + ': ' + e.message, 'bad');
    });
    await Promise.all([detail, loadSamples(key)]);
  }

  function renderProjectDetail(d) {
    setMessage($('project-detail-message'), '');
    const root = clear($('applied-rules'));
    const applied = Array.isArray(d.applied_in_order) ? d.applied_in_order : [];
    if (!applied.length) root.append(el('p', { className: 'muted', text: 'No rules.' }));
    applied.forEach((entry, i) => {
      const rest = {};
      let source = '';
      if (isPlainObject(entry)) {
        for (const [k, v] of Object.entries(entry)) {
          if (k === 'source') source = String(v);
          else rest[k] = v;
        }
      }
      const pii = isPlainObject(rest.piiConfig) ? rest.piiConfig : null;
      let counts = '';
      if (pii) {
        const nRules = isPlainObject(pii.rules) ? Object.keys(pii.rules).length : 0;
        const nApps = isPlainObject(pii.applications) ? Object.keys(pii.applications).length : 0;
        counts = plural(nRules, 'rule') + ', ' + plural(nApps, 'application');
      }
      root.append(
        el('details', { className: 'applied-rule', attrs: { open: '' } },
          el('summary', null, (i + 1) + '. ' + (source || 'rules'),
            counts ? el('span', { className: 'muted', text: '  ' + counts }) : null),
          el('pre', { className: 'json', text: pretty(isPlainObject(entry) ? rest : entry) }),
        ),
      );
    });
    $('project-config').textContent = d.config === undefined ? '' : pretty(d.config);
  }

  async function loadSamples(id) {
    const root = $('samples');
    let data;
    try {
      data = await api('GET', 'api/projects/' + encodeURIComponent(projectKey(id)) + '/samples');
    } catch (e) {
      clear(root).append(el('p', { className: 'error', text: 'Samples: ' + e.message }));
      return;
    }
    if (state.selected !== projectKey(id)) return;
    const samples = Array.isArray(data.samples) ? data.samples : [];
    const tbody = el('tbody');
    for (const s of samples) {
      const shadow = s.shadow === true;
      tbody.append(el('tr', null,
        el('td', { className: 'rule' }, el('code', { text: s.rule ?? '' })),
        el('td', { className: 'path' }, el('code', { text: s.path ?? '' })),
        el('td', { className: 'method', text: s.method ?? '' }),
        el('td', { className: 'shape mono', text: s.shape ?? '' }),
        el('td', { className: 'shadow ' + (shadow ? 'yes' : 'no'), text: shadow ? 'yes' : 'no' }),
        el('td', { className: 'event-id mono', text: s.event_id ?? '' }),
        el('td', { className: 'item-type', text: s.item_type ?? '' }),
      ));
    }
    const table = el('table', { id: 'samples-table' },
      el('thead', null, el('tr', null,
        ...['rule', 'path', 'method', 'shape', 'shadow', 'event id', 'item type'].map((h) => el('th', { text: h })),
      )),
      tbody,
    );
    clear(root).append(el('div', { className: 'table-wrap' }, table));
    if (!samples.length) {
      root.append(el('p', { id: 'samples-empty', className: 'muted',
        text: 'No samples yet: they appear once traffic for this project has been scrubbed.' }));
    }
  }

  async function reloadConfigs() {
    const btn = $('reload-button');
    const out = clear($('reload-result'));
    out.classList.remove('ok', 'bad');
    btn.disabled = true;
    try {
      const data = await api('POST', 'api/reload');
      const errs = Array.isArray(data.errors) ? data.errors : [];
      out.classList.add(errs.length ? 'bad' : 'ok');
      out.append(el('span', { className: 'loaded', text: 'loaded ' + plural(Number(data.loaded) || 0, 'project') +
        (errs.length ? ', ' + plural(errs.length, 'error') + ':' : '') }));
      if (errs.length) {
        const ul = el('ul', { className: 'errors' });
        for (const e of errs) ul.append(errorItem(e));
        out.append(ul);
      }
      state.details.clear();
      await loadProjects();
      if (state.selected) await openProject(state.selected);
    } catch (e) {
      out.classList.add('bad');
      out.append(el('span', { text: 'Reload failed: ' + e.message }));
      if (e.errors) {
        const ul = el('ul', { className: 'errors' });
        for (const x of e.errors) ul.append(errorItem(x));
        out.append(ul);
      }
    } finally {
      btn.disabled = false;
    }
  }

  // ------------------------------------------------------------ JSON errors

  /** Parses JSON; on failure returns the line and column from the engine's message. */
  function parseJson(text) {
    try {
      return { ok: true, value: JSON.parse(text) };
    } catch (e) {
      const message = String(e && e.message ? e.message : e);
      let line = null;
      let column = null;
      let pos = null;
      let m = /line (\d+) column (\d+)/i.exec(message);
      if (m) {
        line = Number(m[1]);
        column = Number(m[2]);
      }
      const p = /position (\d+)/i.exec(message);
      if (p) pos = Number(p[1]);
      if (pos !== null && line === null) {
        const before = text.slice(0, pos).split('\n');
        line = before.length;
        column = before[before.length - 1].length + 1;
      }
      if (pos === null && line !== null) {
        const lines = text.split('\n');
        pos = 0;
        for (let i = 0; i < line - 1 && i < lines.length; i++) pos += lines[i].length + 1;
        pos += column - 1;
      }
      if (pos === null) pos = locateJsonError(text);
      if (pos !== null && line === null) {
        const before = text.slice(0, pos).split('\n');
        line = before.length;
        column = before[before.length - 1].length + 1;
      }
      return { ok: false, message, line, column, pos };
    }
  }

  /**
   * The offset of the first syntax error in `text`, for engines whose JSON.parse message
   * names no position (V8 quotes short inputs instead). A strict JSON scanner; null when
   * it finds nothing wrong.
   */
  function locateJsonError(text) {
    let i = 0;
    const n = text.length;
    class At {
      constructor(pos) {
        this.pos = pos;
      }
    }
    const fail = (pos) => {
      throw new At(Math.min(pos, n));
    };
    const ws = () => {
      while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
    };
    const literal = (word) => {
      for (let k = 0; k < word.length; k++) if (text[i + k] !== word[k]) fail(i + k);
      i += word.length;
    };
    const string = () => {
      i++; // opening quote
      while (i < n) {
        const c = text[i];
        if (c === '"') {
          i++;
          return;
        }
        if (c === '\\') {
          const e = text[i + 1];
          if (e === 'u') {
            if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail(i);
            i += 6;
          } else if ('"\\/bfnrt'.includes(e) && e !== undefined) {
            i += 2;
          } else {
            fail(i);
          }
        } else if (c < ' ') {
          fail(i);
        } else {
          i++;
        }
      }
      fail(n);
    };
    const number = () => {
      const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
      if (!m || !m[0] || m[0] === '-') fail(i);
      i += m[0].length;
    };
    const value = () => {
      ws();
      const c = text[i];
      if (c === '{') {
        i++;
        ws();
        if (text[i] === '}') {
          i++;
          return;
        }
        for (;;) {
          ws();
          if (text[i] !== '"') fail(i);
          string();
          ws();
          if (text[i] !== ':') fail(i);
          i++;
          value();
          ws();
          if (text[i] === ',') {
            i++;
            continue;
          }
          if (text[i] === '}') {
            i++;
            return;
          }
          fail(i);
        }
      } else if (c === '[') {
        i++;
        ws();
        if (text[i] === ']') {
          i++;
          return;
        }
        for (;;) {
          value();
          ws();
          if (text[i] === ',') {
            i++;
            continue;
          }
          if (text[i] === ']') {
            i++;
            return;
          }
          fail(i);
        }
      } else if (c === '"') {
        string();
      } else if (c === 't') {
        literal('true');
      } else if (c === 'f') {
        literal('false');
      } else if (c === 'n') {
        literal('null');
      } else if (c === '-' || (c >= '0' && c <= '9')) {
        number();
      } else {
        fail(i);
      }
    };
    try {
      value();
      ws();
      if (i < n) fail(i);
    } catch (e) {
      if (e instanceof At) return e.pos;
      return null;
    }
    return null;
  }

  function showJsonError(box, textarea, what, res) {
    clear(box);
    box.hidden = false;
    const where = res.line !== null ? ' at line ' + res.line + ', column ' + res.column : '';
    box.append(el('strong', { text: what + ' is not valid JSON' + where + ': ' }), res.message);
    if (res.pos !== null) {
      box.append(' ', el('button', {
        className: 'link', type: 'button', text: 'show',
        on: { click: () => {
          textarea.focus();
          textarea.setSelectionRange(res.pos, Math.min(res.pos + 1, textarea.value.length));
          const lh = parseFloat(getComputedStyle(textarea).lineHeight) || 16;
          textarea.scrollTop = Math.max(0, (res.line - 3) * lh);
        } },
      }));
    }
  }

  function hideBox(box) {
    clear(box);
    box.hidden = true;
  }

  // ------------------------------------------------------------- playground

  function inputMode() {
    return $('input-mode-envelope').checked ? 'envelope' : 'event';
  }

  async function prefillRules() {
    const id = $('playground-project').value;
    const msg = $('playground-message');
    clearPlaygroundErrors();
    if (!id) {
      $('playground-use-loaded').checked = false;
      return;
    }
    setMessage(msg, 'Loading project ' + id + '…');
    try {
      const d = await getProjectDetail(id, true);
      if ($('playground-project').value !== id) return;
      $('playground-rules').value = pretty(d.config === undefined ? {} : d.config);
      setMessage(msg, 'Rules of project ' + id + ' loaded into the editor.');
    } catch (e) {
      setMessage(msg, 'Project ' + id + ': ' + e.message, 'bad');
    }
  }

  function clearPlaygroundErrors() {
    clear($('rule-errors'));
    clear($('input-errors'));
    hideBox($('rules-json-error'));
    hideBox($('input-json-error'));
    setMessage($('playground-message'), '');
  }

  function onModeChange() {
    const envelope = inputMode() === 'envelope';
    $('playground-item-type').disabled = envelope;
    const input = $('playground-input');
    if (envelope && input.value.trim() === state.defaultEventInput.trim()) {
      input.value = SAMPLE_ENVELOPE;
    } else if (!envelope && input.value === SAMPLE_ENVELOPE) {
      input.value = state.defaultEventInput;
    }
    hideBox($('input-json-error'));
  }

  async function scrub() {
    clearPlaygroundErrors();
    const msg = $('playground-message');
    const projectId = $('playground-project').value;
    const useLoaded = $('playground-use-loaded').checked;
    const body = {};
    let valid = true;

    if (useLoaded) {
      if (!projectId) {
        setMessage(msg, 'Choose a project to scrub with its loaded rules.', 'bad');
        return;
      }
      body.project = apiProjectId(projectId);
    } else {
      const rules = parseJson($('playground-rules').value);
      if (!rules.ok) {
        showJsonError($('rules-json-error'), $('playground-rules'), 'Rules', rules);
        valid = false;
      } else if (!isPlainObject(rules.value)) {
        showJsonError($('rules-json-error'), $('playground-rules'), 'Rules',
          { message: 'expected an object (the project file\'s "config")', line: null, pos: null });
        valid = false;
      } else {
        body.config = rules.value;
      }
    }

    const inputText = $('playground-input').value;
    if (inputMode() === 'envelope') {
      if (!inputText.trim()) {
        showJsonError($('input-json-error'), $('playground-input'), 'Envelope',
          { message: 'it is empty', line: null, pos: null });
        valid = false;
      }
      body.envelope = inputText;
    } else {
      const ev = parseJson(inputText);
      if (!ev.ok) {
        showJsonError($('input-json-error'), $('playground-input'), 'Input', ev);
        valid = false;
      } else if (!isPlainObject(ev.value)) {
        showJsonError($('input-json-error'), $('playground-input'), 'Input',
          { message: 'expected an event object', line: null, pos: null });
        valid = false;
      } else {
        body.event = ev.value;
      }
      const itemType = $('playground-item-type').value;
      if (itemType && itemType !== 'event') body.item_type = itemType;
    }
    if (!valid) {
      markOutputStale();
      return;
    }

    const btn = $('scrub-button');
    btn.disabled = true;
    setMessage(msg, 'Scrubbing…');
    try {
      const data = await api('POST', 'api/scrub', body);
      state.lastScrub = data;
      renderScrubResult(data);
      setMessage(msg, '');
    } catch (e) {
      markOutputStale();
      if (e.errors) {
        const ruleList = $('rule-errors');
        const inputList = $('input-errors');
        for (const err of e.errors) {
          const path = err && err.path ? String(err.path) : '';
          // Errors about the input go under the input; everything else (the rules,
          // the project) under the rules editor.
          const target = /^(event|envelope|item)/.test(path) ? inputList : ruleList;
          target.append(errorItem(err));
        }
        setMessage(msg, 'The server refused the request: ' + plural(e.errors.length, 'error') + '.', 'bad');
      } else {
        setMessage(msg, 'Scrub failed: ' + e.message, 'bad');
      }
    } finally {
      btn.disabled = false;
    }
  }

  /** The output no longer matches the editors: say so rather than leave it looking current. */
  function markOutputStale() {
    const out = $('playground-output');
    if (!state.lastScrub || out.classList.contains('stale')) return;
    out.classList.add('stale');
    $('playground-changes').classList.add('stale');
    $('playground-summary').textContent += ' (from the previous scrub)';
  }

  /** Path -> {changes: [{rule, method}], meta: {rem, len, ...}} from `changes` and `_meta`. */
  function buildAnnotations(meta, changes) {
    const map = new Map();
    const entry = (path) => {
      let e = map.get(path);
      if (!e) {
        e = { changes: [], meta: null };
        map.set(path, e);
      }
      return e;
    };
    for (const c of Array.isArray(changes) ? changes : []) {
      if (!c || typeof c !== 'object') continue;
      entry(String(c.path ?? '')).changes.push({ rule: c.rule, method: c.method });
    }
    const walk = (node, path) => {
      if (!isPlainObject(node)) return;
      for (const [k, v] of Object.entries(node)) {
        if (k === '') {
          if (isPlainObject(v) && Array.isArray(v.rem) && v.rem.length) entry(path.join('.')).meta = v;
        } else {
          walk(v, path.concat(k));
        }
      }
    };
    walk(meta, []);
    return map;
  }

  function noteFor(ann) {
    const note = el('span', { className: 'change-note' });
    const parts = [];
    if (ann.changes.length) {
      ann.changes.forEach((c, i) => {
        if (i) note.append('; ');
        note.append(el('span', { className: 'rule', text: c.rule ?? '?' }), ' · ',
          el('span', { className: 'method', text: c.method ?? '?' }));
        parts.push(String(c.rule) + ' ' + String(c.method));
      });
    } else if (ann.meta) {
      ann.meta.rem.forEach((r, i) => {
        const rule = Array.isArray(r) ? r[0] : r;
        const type = Array.isArray(r) ? REMARK_TYPES[r[1]] || r[1] : '';
        if (i) note.append('; ');
        note.append(el('span', { className: 'rule', text: rule ?? '?' }), ' · ',
          el('span', { className: 'method', text: type || '?' }));
      });
    }
    if (ann.meta && typeof ann.meta.len === 'number') {
      note.append(el('span', { className: 'orig-len muted', text: '  (was ' + ann.meta.len + ' chars)' }));
    }
    if (ann.meta && Array.isArray(ann.meta.rem)) {
      note.title = '_meta: ' + JSON.stringify(ann.meta.rem);
    }
    return note;
  }

  /** Renders `value` as pretty-printed JSON, marking annotated paths. */
  function renderJsonTree(value, annotations, found) {
    const root = el('div', { className: 'json-tree' });
    const indentOf = (depth) => '  '.repeat(depth);

    const primitive = (v) => {
      if (typeof v === 'string') return el('span', { className: 'j-str', text: JSON.stringify(v) });
      if (typeof v === 'number') return el('span', { className: 'j-num', text: JSON.stringify(v) });
      return el('span', { className: 'j-lit', text: JSON.stringify(v) });
    };

    const mark = (node, path, line) => {
      node.dataset.path = path;
      const ann = annotations.get(path);
      if (ann && (ann.changes.length || ann.meta)) {
        node.classList.add('changed');
        line.append(noteFor(ann));
        found.add(path);
      }
    };

    // Appends the lines for `v` to `parent`.
    const walk = (parent, v, pathParts, depth, keyLabel, comma, inMeta) => {
      const path = pathParts.join('.');
      const line = el('span', { className: 'json-line' }, indentOf(depth));
      if (keyLabel !== null) {
        line.append(el('span', { className: 'j-key', text: JSON.stringify(keyLabel) }),
          el('span', { className: 'j-punct', text: ': ' }));
      }
      const container = v !== null && typeof v === 'object';
      if (!container) {
        const val = el('span', { className: 'json-value' }, primitive(v));
        line.append(val);
        if (comma) line.append(el('span', { className: 'j-punct', text: ',' }));
        if (!inMeta) mark(val, path, line);
        parent.append(line);
        return;
      }
      const isArr = Array.isArray(v);
      const entries = isArr ? v.map((x, i) => [String(i), x]) : Object.entries(v);
      const open = isArr ? '[' : '{';
      const close = isArr ? ']' : '}';
      const block = el('div', { className: 'json-block' + (inMeta ? ' meta-block' : '') });
      if (!entries.length) {
        line.append(el('span', { className: 'j-punct', text: open + close + (comma ? ',' : '') }));
        block.append(line);
        if (!inMeta && pathParts.length) mark(block, path, line);
        parent.append(block);
        return;
      }
      line.append(el('span', { className: 'j-punct', text: open }));
      block.append(line);
      if (!inMeta && pathParts.length) mark(block, path, line);
      if (depth === 1 && keyLabel === '_meta') {
        // Relay's remarks: the notes beside the values say the same, so fold them.
        block.classList.add('collapsed');
        line.append(el('span', { className: 'ellipsis', text: ' … ' + close + (comma ? ',' : '') }),
          el('button', {
            className: 'toggle', type: 'button', text: 'show',
            attrs: { 'aria-expanded': 'false', 'aria-label': 'show _meta' },
            on: { click: (ev) => {
              const collapsed = block.classList.toggle('collapsed');
              ev.currentTarget.textContent = collapsed ? 'show' : 'hide';
              ev.currentTarget.setAttribute('aria-expanded', collapsed ? 'false' : 'true');
            } },
          }));
      }
      entries.forEach(([k, x], i) => {
        const childMeta = inMeta || (depth === 0 && k === '_meta');
        walk(block, x, pathParts.concat(k), depth + 1, isArr ? null : k, i < entries.length - 1, childMeta);
      });
      block.append(el('span', { className: 'json-line' }, indentOf(depth),
        el('span', { className: 'j-punct', text: close + (comma ? ',' : '') })));
      parent.append(block);
    };

    walk(root, value, [], 0, null, false, false);
    return root;
  }

  function changesTable(rows, withItem) {
    if (!rows.length) return el('p', { className: 'muted', text: 'No changes.' });
    const tbody = el('tbody');
    for (const r of rows) {
      const tr = el('tr', { dataset: { path: r.path } });
      if (withItem) tr.append(el('td', { text: r.item }));
      tr.append(
        el('td', null, r.path || '(whole item)', r.missing ? el('span', { className: 'missing', text: '  not in output' }) : null),
        el('td', null, el('code', { text: r.rule ?? '' })),
        el('td', { text: r.method ?? '' }),
      );
      tbody.append(tr);
    }
    const heads = (withItem ? ['item'] : []).concat(['path', 'rule', 'method']);
    return el('table', { id: 'changes-table' },
      el('thead', null, el('tr', null, ...heads.map((h) => el('th', { text: h })))),
      tbody);
  }

  function renderScrubResult(data) {
    const out = clear($('playground-output'));
    const changesBox = clear($('playground-changes'));
    out.classList.remove('stale');
    changesBox.classList.remove('stale');
    if (typeof data.envelope === 'string') {
      renderEnvelopeResult(out, changesBox, data);
      return;
    }
    const changes = Array.isArray(data.changes) ? data.changes : [];
    const event = data.event;
    const annotations = buildAnnotations(isPlainObject(event) ? event._meta : null, changes);
    const found = new Set();
    out.append(renderJsonTree(event, annotations, found));
    $('playground-summary').textContent = plural(changes.length, 'change');
    changesBox.append(changesTable(changes.map((c) => ({
      path: String(c.path ?? ''), rule: c.rule, method: c.method, missing: !found.has(String(c.path ?? '')),
    })), false));
  }

  /** Splits envelope text into its header and items (lengths are UTF-8 bytes). */
  function parseEnvelope(text) {
    const bytes = new TextEncoder().encode(text);
    const dec = new TextDecoder('utf-8');
    let pos = 0;
    const readLine = () => {
      let end = bytes.indexOf(10, pos);
      if (end < 0) end = bytes.length;
      const line = dec.decode(bytes.subarray(pos, end));
      pos = end + 1;
      return line;
    };
    const header = readLine();
    const items = [];
    while (pos < bytes.length) {
      const headLine = readLine();
      if (!headLine.trim()) continue;
      let head;
      try {
        head = JSON.parse(headLine);
      } catch (_) {
        throw new Error('item header is not JSON: ' + headLine.slice(0, 80));
      }
      let payload;
      if (isPlainObject(head) && typeof head.length === 'number') {
        payload = dec.decode(bytes.subarray(pos, pos + head.length));
        pos += head.length;
        if (bytes[pos] === 10) pos += 1;
      } else {
        payload = readLine();
      }
      items.push({ header: head, payload });
    }
    return { header, items };
  }

  function renderEnvelopeResult(out, changesBox, data) {
    const items = Array.isArray(data.items) ? data.items : [];
    const rows = [];
    let total = 0;
    let parsed = null;
    try {
      parsed = parseEnvelope(data.envelope);
    } catch (e) {
      out.append(el('p', { className: 'error', text: 'Cannot split the envelope: ' + e.message }));
    }
    // The server reports changes per item type: give each output item the next report
    // of its type, in order; reports left over belong to items that were dropped.
    const pool = new Map();
    for (const it of items) {
      const type = String(it && it.type !== undefined ? it.type : '');
      if (!pool.has(type)) pool.set(type, []);
      pool.get(type).push(it);
    }
    if (parsed) {
      out.append(el('div', { className: 'item-head', text: 'envelope header' }),
        el('span', { className: 'json-line', text: parsed.header }));
      parsed.items.forEach((item, i) => {
        const type = isPlainObject(item.header) ? String(item.header.type ?? '') : '';
        const queue = pool.get(type);
        const report = queue && queue.length ? queue.shift() : null;
        const changes = report && Array.isArray(report.changes) ? report.changes : [];
        const box = el('div', { className: 'item', dataset: { item: i, itemType: type } },
          el('div', { className: 'item-head', text: 'item ' + (i + 1) + ': ' + (type || '?') + ' · ' + plural(changes.length, 'change') }),
          el('span', { className: 'json-line muted', text: JSON.stringify(item.header) }));
        let payload;
        let isJson = false;
        try {
          payload = JSON.parse(item.payload);
          isJson = payload !== null && typeof payload === 'object';
        } catch (_) {
          isJson = false;
        }
        const found = new Set();
        if (isJson) {
          box.append(renderJsonTree(payload, buildAnnotations(isPlainObject(payload) ? payload._meta : null, changes), found));
        } else {
          box.append(el('span', { className: 'json-line', text: item.payload }));
        }
        for (const c of changes) {
          const path = String(c.path ?? '');
          rows.push({ item: (i + 1) + ' ' + type, path, rule: c.rule, method: c.method, missing: isJson && !found.has(path) });
        }
        total += changes.length;
        out.append(box);
      });
    }
    for (const [type, left] of pool) {
      for (const it of left) {
        for (const c of Array.isArray(it.changes) ? it.changes : []) {
          rows.push({ item: type + ' (not in output)', path: String(c.path ?? ''), rule: c.rule, method: c.method, missing: false });
          total += 1;
        }
      }
    }
    out.append(el('details', null, el('summary', { text: 'raw envelope' }),
      el('pre', { className: 'json', text: data.envelope })));
    $('playground-summary').textContent = plural(total, 'change') + ' in ' +
      plural(parsed ? parsed.items.length : items.length, 'item');
    changesBox.append(changesTable(rows, true));
  }

  async function copyProjectFile() {
    const msg = $('playground-message');
    hideBox($('rules-json-error'));
    const rules = parseJson($('playground-rules').value);
    if (!rules.ok) {
      showJsonError($('rules-json-error'), $('playground-rules'), 'Rules', rules);
      return;
    }
    const id = $('playground-project').value;
    const project = id ? projectById(id) : null;
    const file = {};
    if (project) file.projectId = project.id;
    const keys = project && Array.isArray(project.keys) ? project.keys : [];
    file.publicKeys = keys.map((k) => ({ publicKey: k, isEnabled: true }));
    file.config = rules.value;
    const text = pretty(file) + '\n';
    const box = $('project-file');
    const area = $('project-file-output');
    box.hidden = false;
    area.value = text;
    const masked = keys.some((k) => /[…*]|\.\.\./.test(String(k)));
    $('project-file-note').textContent = (project ? 'config/projects/' + project.id + '.json' : 'A project file') +
      (masked ? '. The server shows public keys masked: put the full keys in before using it.' :
        keys.length ? '' : '. Add the project\'s public keys to publicKeys.');
    const selectText = () => {
      area.focus();
      area.select();
    };
    if (navigator.clipboard && typeof navigator.clipboard.writeText === 'function' && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        setMessage(msg, 'Project file copied to the clipboard.', 'ok');
        return;
      } catch (_) {
        // Permission refused: fall through to selecting the text.
      }
    }
    selectText();
    setMessage(msg, 'Project file selected below: press Ctrl+C (⌘C) to copy it.');
  }

  // -------------------------------------------------------------- pseudonym

  async function lookupPseudonym(ev) {
    ev.preventDefault();
    const msg = $('pseudonym-message');
    const out = $('pseudonym-results');
    const id = $('pseudonym-project').value;
    const value = $('pseudonym-value').value;
    const selector = $('pseudonym-selector').value;
    if (!id) {
      setMessage(msg, 'Choose a project.', 'bad');
      return;
    }
    if (!value) {
      setMessage(msg, 'Enter the value to look up.', 'bad');
      $('pseudonym-value').focus();
      return;
    }
    const body = { project: apiProjectId(id), value };
    if (selector) body.selector = selector;
    const btn = $('pseudonym-button');
    btn.disabled = true;
    setMessage(msg, 'Looking up…');
    try {
      const data = await api('POST', 'api/pseudonym', body);
      const results = Array.isArray(data.results) ? data.results : [];
      setMessage(msg, plural(results.length, 'result'));
      renderPseudonyms(clear(out), results);
    } catch (e) {
      clear(out);
      setMessage(msg, 'Lookup failed: ' + e.message, 'bad');
      if (e.errors) {
        const ul = el('ul', { className: 'errors' });
        for (const x of e.errors) ul.append(errorItem(x));
        out.append(ul);
      }
    } finally {
      btn.disabled = false;
    }
  }

  function copyButton(text) {
    return el('button', {
      className: 'secondary copy', type: 'button', text: 'Copy',
      on: { click: async (ev) => {
        const b = ev.currentTarget;
        try {
          await navigator.clipboard.writeText(text);
          b.textContent = 'Copied';
        } catch (_) {
          const sel = window.getSelection();
          const code = b.parentElement.querySelector('code');
          if (sel && code) {
            const range = document.createRange();
            range.selectNodeContents(code);
            sel.removeAllRanges();
            sel.addRange(range);
          }
          b.textContent = 'Selected';
        }
        setTimeout(() => { b.textContent = 'Copy'; }, 1500);
      } },
    });
  }

  function renderPseudonyms(out, results) {
    if (!results.length) {
      out.append(el('p', { className: 'muted', text: 'This project protects no field that matches.' }));
    }
    const tbody = el('tbody');
    for (const r of results) {
      tbody.append(el('tr', null,
        el('td', { className: 'selector' }, el('code', { text: r.selector ?? '' })),
        el('td', { className: 'replacement' }, el('code', { text: r.replacement ?? '' })),
        el('td', { className: 'key-id', text: r.key_id ?? '' }),
        el('td', { className: 'query' }, el('code', { text: r.query ?? '' }), ' ', r.query ? copyButton(String(r.query)) : null),
      ));
    }
    out.append(el('div', { className: 'table-wrap' }, el('table', { id: 'pseudonym-table' },
      el('thead', null, el('tr', null, ...['field', 'replacement', 'key id', 'Sentry search query'].map((h) => el('th', { text: h })))),
      tbody)));
  }

  // ------------------------------------------------------------------- tabs

  const VIEWS = ['projects', 'playground', 'pseudonym'];

  function showView(name) {
    if (!VIEWS.includes(name)) name = 'projects';
    for (const v of VIEWS) {
      $('view-' + v).hidden = v !== name;
      $('tab-' + v).setAttribute('aria-selected', v === name ? 'true' : 'false');
    }
    const hash = '#/' + name;
    if (location.hash !== hash) history.replaceState(null, '', hash);
  }

  async function refreshAll() {
    await Promise.all([loadStatus(), loadProjects()]);
    if (state.selected) await openProject(state.selected);
  }

  // ------------------------------------------------------------------- init

  function init() {
    state.defaultEventInput = $('playground-input').value;

    $('token-input').value = currentToken();
    updateTokenState();
    $('token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      setToken($('token-input').value.trim());
      hideAuth();
      state.authShown = false;
      refreshAll();
    });
    $('token-clear').addEventListener('click', () => {
      $('token-input').value = '';
      setToken('');
    });

    for (const v of VIEWS) $('tab-' + v).addEventListener('click', () => showView(v));
    window.addEventListener('hashchange', () => showView(location.hash.replace(/^#\/?/, '')));

    $('projects-refresh').addEventListener('click', () => {
      loadStatus();
      loadProjects();
    });
    $('reload-button').addEventListener('click', reloadConfigs);
    $('detail-close').addEventListener('click', () => {
      state.selected = null;
      $('project-detail').hidden = true;
      for (const card of document.querySelectorAll('.project-card.selected')) card.classList.remove('selected');
    });
    $('samples-refresh').addEventListener('click', () => {
      if (state.selected) loadSamples(state.selected);
    });
    $('detail-to-playground').addEventListener('click', () => {
      if (!state.selected) return;
      $('playground-project').value = state.selected;
      showView('playground');
      prefillRules();
    });
    $('detail-to-pseudonym').addEventListener('click', () => {
      if (!state.selected) return;
      $('pseudonym-project').value = state.selected;
      showView('pseudonym');
      $('pseudonym-value').focus();
    });

    $('playground-project').addEventListener('change', prefillRules);
    $('input-mode-event').addEventListener('change', onModeChange);
    $('input-mode-envelope').addEventListener('change', onModeChange);
    $('scrub-button').addEventListener('click', scrub);
    $('copy-project-file').addEventListener('click', copyProjectFile);
    for (const id of ['playground-rules', 'playground-input']) {
      $(id).addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
          ev.preventDefault();
          scrub();
        }
      });
    }

    $('pseudonym-form').addEventListener('submit', lookupPseudonym);

    showView(location.hash.replace(/^#\/?/, '') || 'projects');
    refreshAll();
    setInterval(() => {
      if (!document.hidden) loadStatus();
    }, STATUS_POLL_MS);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
