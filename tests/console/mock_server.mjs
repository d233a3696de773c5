// A stand-in for scrubgate's admin listener, for developing the console without the
// Rust server. It serves src/server/console/ at /, /console.css and /console.js and
// answers the console's API with canned data, as the real server does:
//
//   GET  /api/status                 {"upstream": {"state"}, "spool": {"entries","bytes"} | null}
//   GET  /api/projects               {"projects": [{id, keys, rule_count, coverage, protect,
//                                      reload: {result, errors}, hits, shadow_hits}]}
//   GET  /api/projects/{id}          the same object + config (hash keys masked), applied_in_order
//   GET  /api/projects/{id}/samples  {"samples": [{rule, path, method, shape, shadow, event_id, item_type}]}
//   POST /api/scrub                  {"project"|"config", "event"|"envelope", "item_type"?}
//                                    -> {"event", "changes"} | {"envelope", "items": [{type, changes}]}
//                                       (one entry per item type, sorted by type)
//                                    -> 400 {"errors": [{path, message}]} for invalid rules
//   POST /api/pseudonym              {"project", "value", "selector"?} -> {"results": [{selector, replacement, key_id, query}]}
//   POST /api/reload                 {"loaded", "errors": [{file, path, message}]}
//
// Errors are {"detail": "..."} (or {"errors": [...]}) with a 4xx status. Every /api/ route
// needs `Authorization: Bearer <token>` (MOCK_TOKEN, default "test-token"); every answer
// carries `Content-Security-Policy: default-src 'self'`.
//
// The "scrubbing" here is a toy (emails and IP addresses only, HMAC-SHA1 hashes); it only
// has to look like the real thing to the page.
//
// Usage: node mock_server.mjs [port]   (PORT env or argument; 0 = any free port). Prints
// "listening on http://127.0.0.1:PORT" once ready.

import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const consoleDir = join(here, '..', '..', 'src', 'server', 'console');
const TOKEN = process.env.MOCK_TOKEN ?? 'test-token';
const port = Number(process.argv[2] ?? process.env.PORT ?? 0);

const STATIC = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/console.css': ['console.css', 'text/css; charset=utf-8'],
  '/console.js': ['console.js', 'text/javascript; charset=utf-8'],
};

// The loaded projects: what the server knows, including the real hash keys (never sent).
const PROJECTS = {
  42: {
    keys: ['a4f6c2d8e1b34f7a9c0d5e2b8f1a3c6d'],
    hashKey: 'mock-project-42-key',
    config: {
      allowedDomains: ['*'],
      piiConfig: {
        vars: { hashKey: 'SECRET' },
        rules: {
          order_token: {
            type: 'pattern',
            pattern: '\\bord_[A-Za-z0-9]{24}\\b',
            redaction: { method: 'replace', text: '[order-token]' },
          },
        },
        applications: { $string: ['order_token'] },
      },
      datascrubbingSettings: { scrubData: true, scrubDefaults: true, scrubIpAddresses: true },
      scrubgate: { coverage: 'all', protect: ['all'], protectMethod: 'hash' },
    },
    reload: { result: 'ok', errors: [] },
    hits: { 'protect-emails': 17, 'protect-emails-in-text': 9, order_token: 2, 'protect-ip_addresses': 17 },
    shadow_hits: { 'shadow-phone-numbers': 4 },
  },
  7: {
    keys: ['0b1c2d3e4f5061728394a5b6c7d8e9f0'],
    hashKey: 'mock-project-7-key',
    config: {
      piiConfig: {
        rules: {
          order: { type: 'pattern', pattern: 'ord_[0-9]+', redaction: { method: 'remove' } },
        },
        applications: { $string: ['order'] },
      },
      scrubgate: { coverage: 'relay', protect: ['emails'] },
    },
    reload: {
      result: 'error',
      errors: [{ path: 'config.piiConfig.rules.order.pattern', message: 'regex parse error: unclosed group' }],
    },
    hits: {},
    shadow_hits: {},
  },
};

const SAMPLES = {
  42: [
    { rule: 'protect-emails', path: 'user.email', method: 'hash', shape: 'email (16 chars)', shadow: false,
      event_id: '9ec79c33ec9942ab8353589fcb2e04dc', item_type: 'event' },
    { rule: 'protect-emails-in-text', path: 'message', method: 'replace', shape: 'text with email (36 chars)', shadow: false,
      event_id: '9ec79c33ec9942ab8353589fcb2e04dc', item_type: 'event' },
    { rule: 'shadow-phone-numbers', path: 'extra.note', method: 'replace', shape: 'text (24 chars)', shadow: true,
      event_id: 'b2d4a1ee0d1c4f0b8f1d0e4b5c6a7d8e', item_type: 'transaction' },
  ],
  7: [],
};

const mask = (key) => key.slice(0, 4) + '…' + key.slice(-4);

function maskConfig(config) {
  const copy = structuredClone(config);
  const vars = copy.piiConfig && copy.piiConfig.vars;
  if (vars && vars.hashKey) vars.hashKey = '********';
  return copy;
}

function summary(id) {
  const p = PROJECTS[id];
  const sg = p.config.scrubgate ?? {};
  const protect = (sg.protect ?? []).includes('all')
    ? ['emails', 'user_ids', 'ip_addresses', 'device_ids']
    : sg.protect ?? [];
  // The project's own rules plus the ones `protect` expands into (a field rule and a
  // free-text rule per category).
  const rules = Object.keys(p.config.piiConfig?.rules ?? {}).length + protect.length * 2;
  return {
    id: Number(id),
    keys: p.keys.map(mask),
    rule_count: rules,
    coverage: sg.coverage ?? 'relay',
    protect,
    reload: p.reload,
    hits: p.hits,
    shadow_hits: p.shadow_hits,
  };
}

function detail(id) {
  const p = PROJECTS[id];
  const protect = summary(id).protect;
  return {
    ...summary(id),
    config: maskConfig(p.config),
    applied_in_order: [
      { source: 'config.piiConfig', piiConfig: maskConfig(p.config).piiConfig },
      {
        source: 'config.datascrubbingSettings',
        piiConfig: { applications: { '$string': ['@common:filter', '@ip:replace'] } },
      },
      ...protect.map((c) => ({
        source: 'config.scrubgate.protect.' + c,
        piiConfig: {
          rules: { ['protect-' + c]: { type: 'anything', redaction: { method: 'hash' } } },
          applications: { [c === 'emails' ? '$user.email' : '$user.id']: ['protect-' + c] },
        },
      })),
    ],
  };
}

// ------------------------------------------------------------------ toy scrubber

const hmac = (key, value) => createHmac('sha1', key).update(value).digest('hex').toUpperCase();
const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g;

/** Validates a project file's config the way the console expects errors back. */
function validateConfig(config) {
  const errors = [];
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    return [{ path: 'config', message: 'expected an object' }];
  }
  const rules = config.piiConfig?.rules ?? {};
  for (const [id, rule] of Object.entries(rules)) {
    for (const field of ['pattern', 'keyPattern', 'valuePattern']) {
      if (typeof rule?.[field] !== 'string') continue;
      try {
        new RegExp(rule[field].replace(/^\(\?i\)/, ''));
      } catch (e) {
        errors.push({
          path: `config.piiConfig.rules.${id}.${field}`,
          message: 'regex parse error: ' + e.message.replace(/^Invalid regular expression: /, ''),
        });
      }
    }
  }
  const protect = config.scrubgate?.protect ?? [];
  const known = ['all', 'emails', 'user_ids', 'ip_addresses', 'device_ids'];
  protect.forEach((p, i) => {
    if (!known.includes(p)) {
      errors.push({ path: `config.scrubgate.protect.${i}`, message: `unknown category "${p}"` });
    }
  });
  return errors;
}

function scrubEvent(event, config, hashKey) {
  const protect = config.scrubgate?.protect ?? [];
  const has = (c) => protect.includes('all') || protect.includes(c);
  const scrubIp = has('ip_addresses') || config.datascrubbingSettings?.scrubIpAddresses === true;
  const changes = [];
  const meta = {};
  const setMeta = (path, rem, len) => {
    let node = meta;
    for (const seg of path) node = node[seg] ??= {};
    node[''] = { rem, len };
  };
  const walk = (value, path) => {
    if (Array.isArray(value)) return value.map((v, i) => walk(v, [...path, String(i)]));
    if (value && typeof value === 'object') {
      const out = {};
      for (const [k, v] of Object.entries(value)) out[k] = path.length === 0 && k === '_meta' ? v : walk(v, [...path, k]);
      return out;
    }
    const dotted = path.join('.');
    if (typeof value !== 'string') return value;
    if (dotted === 'user.email' && has('emails')) {
      const h = hmac(hashKey, value);
      changes.push({ path: dotted, rule: 'protect-emails', method: 'hash' });
      setMeta(path, [['protect-emails', 'p', 0, h.length]], value.length);
      return h;
    }
    if ((dotted === 'user.id' || dotted === 'user.username') && has('user_ids')) {
      const h = hmac(hashKey, value);
      changes.push({ path: dotted, rule: 'protect-user_ids', method: 'hash' });
      setMeta(path, [['protect-user_ids', 'p', 0, h.length]], value.length);
      return h;
    }
    if (dotted === 'user.ip_address' && scrubIp) {
      changes.push({ path: dotted, rule: 'protect-ip_addresses', method: 'remove' });
      setMeta(path, [['protect-ip_addresses', 'x']], value.length);
      return null;
    }
    if (has('emails') && EMAIL.test(value)) {
      EMAIL.lastIndex = 0;
      const rem = [];
      let shift = 0;
      const replaced = value.replace(EMAIL, (m, offset) => {
        rem.push(['protect-emails-in-text', 's', offset + shift, offset + shift + 7]);
        shift += 7 - m.length;
        return '[email]';
      });
      changes.push({ path: dotted, rule: 'protect-emails-in-text', method: 'replace' });
      setMeta(path, rem, value.length);
      return replaced;
    }
    EMAIL.lastIndex = 0;
    return value;
  };
  const scrubbed = walk(event, []);
  if (Object.keys(meta).length) scrubbed._meta = { ...(event._meta ?? {}), ...meta };
  return { event: scrubbed, changes };
}

function scrubEnvelope(text, config, hashKey) {
  const lines = text.split('\n');
  const out = [lines[0]];
  const items = [];
  for (let i = 1; i < lines.length; i++) {
    if (!lines[i].trim()) continue;
    let header;
    try {
      header = JSON.parse(lines[i]);
    } catch (e) {
      throw { status: 400, detail: `envelope item header on line ${i + 1} is not JSON` };
    }
    const payload = lines[++i] ?? '';
    let body = payload;
    let changes = [];
    if (['event', 'transaction'].includes(header.type)) {
      let ev;
      try {
        ev = JSON.parse(payload);
      } catch (e) {
        throw { status: 400, detail: `the ${header.type} item is not valid JSON` };
      }
      const r = scrubEvent(ev, config, hashKey);
      body = JSON.stringify(r.event);
      changes = r.changes;
    }
    out.push(JSON.stringify({ ...header, length: Buffer.byteLength(body) }), body);
    // As the server does: one report per item type (sorted by type), changes in order.
    let report = items.find((r) => r.type === header.type);
    if (!report) items.push((report = { type: header.type, changes: [] }));
    report.changes.push(...changes);
  }
  items.sort((a, b) => String(a.type).localeCompare(String(b.type)));
  return { envelope: out.join('\n') + '\n', items };
}

// -------------------------------------------------------------------- HTTP

function send(res, status, body, type = 'application/json') {
  const data = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': type,
    'Content-Security-Policy': "default-src 'self'",
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(data),
  });
  res.end(data);
}

const detailError = (res, status, detail) => send(res, status, { detail });

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch (e) {
    throw { status: 400, detail: 'the request body is not JSON' };
  }
}

async function handleApi(req, res, path) {
  const auth = req.headers.authorization ?? '';
  if (auth !== 'Bearer ' + TOKEN) {
    return detailError(res, 401, 'missing or wrong admin token: send Authorization: Bearer <admin.token>');
  }

  const get = req.method === 'GET' || req.method === 'HEAD';
  let m;
  if (path === '/api/status') {
    if (!get) return detailError(res, 405, 'method not allowed');
    return send(res, 200, { upstream: { state: 'probing' }, spool: { entries: 3, bytes: 18432 } });
  }
  if (path === '/api/projects') {
    if (!get) return detailError(res, 405, 'method not allowed');
    return send(res, 200, { projects: Object.keys(PROJECTS).map(summary) });
  }
  if ((m = /^\/api\/projects\/([^/]+)(\/samples)?$/.exec(path))) {
    if (!get) return detailError(res, 405, 'method not allowed');
    const id = decodeURIComponent(m[1]);
    if (!PROJECTS[id]) return detailError(res, 404, `no project ${id}`);
    return send(res, 200, m[2] ? { samples: SAMPLES[id] ?? [] } : detail(id));
  }
  if (path === '/api/scrub') {
    if (req.method !== 'POST') return detailError(res, 405, 'method not allowed');
    const body = await readJson(req);
    let config;
    let hashKey;
    if (body.config !== undefined) {
      const errors = validateConfig(body.config);
      if (errors.length) return send(res, 400, { errors });
      config = body.config;
      hashKey = String(config.piiConfig?.vars?.hashKey ?? '');
    } else if (body.project !== undefined) {
      const p = PROJECTS[body.project];
      if (!p) return detailError(res, 404, `no project ${body.project}`);
      config = p.config;
      hashKey = p.hashKey;
    } else {
      return send(res, 400, { errors: [{ path: 'config', message: 'give "project" or "config"' }] });
    }
    if (typeof body.envelope === 'string') return send(res, 200, scrubEnvelope(body.envelope, config, hashKey));
    if (body.event === null || typeof body.event !== 'object' || Array.isArray(body.event)) {
      return send(res, 400, { errors: [{ path: 'event', message: 'expected an event object' }] });
    }
    return send(res, 200, scrubEvent(body.event, config, hashKey));
  }
  if (path === '/api/pseudonym') {
    if (req.method !== 'POST') return detailError(res, 405, 'method not allowed');
    const body = await readJson(req);
    const p = PROJECTS[body.project];
    if (!p) return detailError(res, 404, `no project ${body.project}`);
    if (typeof body.value !== 'string' || !body.value) {
      return send(res, 400, { errors: [{ path: 'value', message: 'expected a non-empty string' }] });
    }
    const selectors = body.selector
      ? [body.selector]
      : ['user.email', 'user.id', 'user.username', 'trace.user_id'];
    const queryField = { 'trace.user_id': 'user.id' };
    const results = selectors.map((selector) => {
      const replacement = hmac(p.hashKey, body.value);
      return { selector, replacement, key_id: 'hashKey', query: `${queryField[selector] ?? selector}:${replacement}` };
    });
    return send(res, 200, { results });
  }
  if (path === '/api/reload') {
    if (req.method !== 'POST') return detailError(res, 405, 'method not allowed');
    return send(res, 200, {
      loaded: 1,
      errors: [{ file: 'config/projects/7.json', path: 'config.piiConfig.rules.order.pattern', message: 'regex parse error: unclosed group' }],
    });
  }
  return detailError(res, 404, 'not found');
}

const server = createServer(async (req, res) => {
  const path = new URL(req.url, 'http://localhost').pathname;
  try {
    if (path.startsWith('/api/')) return await handleApi(req, res, path);
    const file = STATIC[path];
    if (!file || !(req.method === 'GET' || req.method === 'HEAD')) return detailError(res, 404, 'not found');
    // Read on every request, so edits show up on reload.
    return send(res, 200, readFileSync(join(consoleDir, file[0]), 'utf8'), file[1]);
  } catch (e) {
    if (e && e.status) return detailError(res, e.status, e.detail);
    console.error(e);
    return detailError(res, 500, 'internal error');
  }
});

server.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
