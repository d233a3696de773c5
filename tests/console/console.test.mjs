// Real-browser test of scrubgate's admin console: Debian's Chromium, headless, driven by
// playwright-core (which downloads no browser).
//
// Environment:
//   CONSOLE_URL     the console, e.g. http://127.0.0.1:3001/ (required)
//   CONSOLE_TOKEN   the admin token; when set, the server must refuse the API without it
//   SCREENSHOT_DIR  where console-projects.png and console-playground.png go
//                   (default: a new temporary directory, printed)
//   EXPECT_SAMPLES  "1": project 42's samples table must have at least one row
//   CHROMIUM        the browser binary (default /usr/bin/chromium)
//   CONSOLE_PROJECT the project to drive (default 42)
//
// Prints one line per step and "N passed, N failed" at the end; exits 1 on the first
// failure (later steps depend on earlier ones), with what was expected and what the page
// showed.

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const URL_ = process.env.CONSOLE_URL;
const TOKEN = process.env.CONSOLE_TOKEN ?? '';
const EXPECT_SAMPLES = process.env.EXPECT_SAMPLES === '1';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PROJECT = process.env.CONSOLE_PROJECT || '42';
const SHOTS = process.env.SCREENSHOT_DIR || mkdtempSync(join(tmpdir(), 'console-shots-'));
const TIMEOUT = 15000;

if (!URL_) {
  console.error('console.test.mjs: set CONSOLE_URL to the console (e.g. http://127.0.0.1:3001/)');
  process.exit(2);
}
mkdirSync(SHOTS, { recursive: true });

class Failure extends Error {}
function check(cond, message) {
  if (!cond) throw new Failure(message);
}

const EVENT = {
  event_id: '0a1b2c3d4e5f40718293a4b5c6d7e8f9',
  message: 'payment failed for jane@example.com',
  level: 'error',
  user: { email: 'jane@example.com', id: 'u-1234' },
  tags: { region: 'eu-west-1' },
};
const BAD_RULE = 'console_test_bad_regex';

let passed = 0;
let failed = 0;
const pageErrors = [];
const cspViolations = [];

async function step(name, fn) {
  const started = Date.now();
  try {
    await fn();
    passed += 1;
    console.log(`ok ${passed} - ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failed += 1;
    const why = e instanceof Failure ? e.message : (e && e.stack) || String(e);
    console.log(`not ok ${passed + failed} - ${name}\n  ${why.replace(/\n/g, '\n  ')}`);
    throw e;
  }
}

const profile = mkdtempSync(join(tmpdir(), 'console-chromium-'));
let context;
let page;

async function main() {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1440, height: 1000 },
    timeout: 60000,
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(TIMEOUT);
  page.on('pageerror', (e) => pageErrors.push(String(e && e.stack ? e.stack : e)));
  page.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) cspViolations.push(msg.text());
  });
  const apiCalls = [];
  page.on('request', (req) => {
    if (new URL(req.url()).pathname.startsWith('/api/')) apiCalls.push(req);
  });

  await step('the console loads', async () => {
    const resp = await page.goto(URL_, { waitUntil: 'load' });
    check(resp && resp.ok(), `GET ${URL_} answered ${resp && resp.status()}`);
    const csp = resp.headers()['content-security-policy'] ?? '';
    check(/default-src 'self'/.test(csp), `the page has no "default-src 'self'" CSP (got "${csp}")`);
    check((await page.title()).includes('scrubgate console'), `title is "${await page.title()}"`);
    await page.locator('h1', { hasText: 'scrubgate console' }).waitFor();
  });

  if (TOKEN) {
    await step('without a token the page asks for one, with the server\'s detail', async () => {
      const banner = page.locator('#auth-message');
      await banner.waitFor({ state: 'visible' }).catch(() => {
        throw new Failure('#auth-message never appeared: does the server require the token on /api/?');
      });
      const text = (await banner.textContent()).trim();
      check(text.length > 10, `#auth-message is "${text}"`);
    });
  }

  await step('the token is saved in sessionStorage and sent', async () => {
    await page.fill('#token-input', TOKEN);
    const next = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/projects');
    await page.click('#token-save');
    const resp = await next;
    check(resp.status() === 200, `GET /api/projects with the token answered ${resp.status()}: ${await resp.text()}`);
    const stored = await page.evaluate(() => sessionStorage.getItem('scrubgate-admin-token'));
    check(stored === (TOKEN || null), `sessionStorage holds ${JSON.stringify(stored)}`);
    if (TOKEN) {
      const auth = resp.request().headers().authorization;
      check(auth === `Bearer ${TOKEN}`, `Authorization header was ${JSON.stringify(auth)}`);
      await page.locator('#auth-message').waitFor({ state: 'hidden' });
    }
    const cookies = await context.cookies();
    check(cookies.length === 0, `the console set cookies: ${JSON.stringify(cookies)}`);
  });

  await step(`project ${PROJECT} is listed with its keys, rules and reload result`, async () => {
    const card = page.locator(`#projects #project-${PROJECT}`);
    await card.waitFor({ state: 'visible' }).catch(async () => {
      throw new Failure(`#project-${PROJECT} not in #projects; #projects shows: ` +
        JSON.stringify((await page.locator('#projects').innerText()).slice(0, 400)));
    });
    const text = await card.innerText();
    check(text.includes(`Project ${PROJECT}`), `card text: ${text}`);
    check(/reload (ok|error)/.test(text), `no reload result in the card: ${text}`);
    const keys = await card.locator('.keys .tag').count();
    check(keys >= 1, `no key shown in the card: ${text}`);
    const upstream = (await page.locator('#status-upstream').innerText()).trim();
    check(['up', 'down', 'probing', 'outbox'].includes(upstream), `#status-upstream shows "${upstream}"`);
  });

  let projectRules = null;
  let scrubbedEmail = null;
  await step('the playground scrubs an event with the project\'s rules and highlights changes', async () => {
    await page.click('#tab-playground');
    await page.locator('#view-playground').waitFor({ state: 'visible' });
    const before = await page.inputValue('#playground-rules');
    const detail = page.waitForResponse((r) => new URL(r.url()).pathname === `/api/projects/${PROJECT}`);
    await page.selectOption('#playground-project', PROJECT);
    check((await detail).ok(), 'GET /api/projects/{id} failed');
    await page.waitForFunction((b) => document.getElementById('playground-rules').value !== b, before);
    projectRules = JSON.parse(await page.inputValue('#playground-rules'));
    check(projectRules && typeof projectRules === 'object', 'the rules editor holds no object');

    await page.fill('#playground-input', JSON.stringify(EVENT, null, 2));
    const scrubbed = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/scrub');
    await page.click('#scrub-button');
    const resp = await scrubbed;
    const sent = resp.request().postDataJSON();
    check(sent && sent.config && sent.event && sent.event.user.email === EVENT.user.email,
      `POST /api/scrub sent ${JSON.stringify(sent).slice(0, 300)}`);
    const body = await resp.json().catch(() => null);
    check(resp.status() === 200, `POST /api/scrub answered ${resp.status()}: ${JSON.stringify(body)}`);
    const emailChanges = (body.changes ?? []).filter((c) => c.path === 'user.email');
    check(emailChanges.length > 0, `the server reported no change at user.email: ${JSON.stringify(body.changes)}`);

    const value = page.locator('#playground-output .changed[data-path="user.email"]');
    await value.first().waitFor({ state: 'visible' }).catch(() => {
      throw new Failure('no .changed[data-path="user.email"] in #playground-output');
    });
    const shown = (await value.first().innerText()).trim();
    check(!shown.includes('jane@example.com'), `user.email is still shown as ${shown}`);
    const note = (await value.first().locator('xpath=ancestor-or-self::*[contains(@class,"json-line")][1]//*[contains(@class,"change-note")]').innerText()).trim();
    for (const c of emailChanges) {
      check(note.includes(c.rule) && note.includes(c.method),
        `the note next to user.email is "${note}", expected rule ${c.rule} and method ${c.method}`);
    }
    const out = await page.locator('#playground-output').innerText();
    check(!out.replace(/"_meta"[\s\S]*$/, '').includes('jane@example.com'), 'the output still contains jane@example.com');
    const rows = await page.locator('#playground-changes tbody tr').count();
    check(rows === (body.changes ?? []).length, `#playground-changes has ${rows} rows for ${body.changes.length} changes`);
    await page.screenshot({ path: join(SHOTS, 'console-playground.png'), fullPage: true });
  });

  await step('scrubbing with the loaded rules gives the hash the pseudonym lookup will find', async () => {
    await page.check('#playground-use-loaded');
    const scrubbed = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/scrub');
    await page.click('#scrub-button');
    const resp = await scrubbed;
    const sent = resp.request().postDataJSON();
    check(String(sent.project) === PROJECT && sent.config === undefined, `sent ${JSON.stringify(sent).slice(0, 200)}`);
    check(resp.status() === 200, `POST /api/scrub {"project"} answered ${resp.status()}: ${await resp.text()}`);
    const body = await resp.json();
    scrubbedEmail = body.event && body.event.user ? body.event.user.email : null;
    check(typeof scrubbedEmail === 'string' && scrubbedEmail !== EVENT.user.email, `user.email came back as ${scrubbedEmail}`);
    await page.uncheck('#playground-use-loaded');
  });

  await step('invalid JSON in either editor is reported locally with line and column', async () => {
    const calls = apiCalls.length;
    await page.fill('#playground-rules', '{\n  "piiConfig": {\n    "rules": {,}\n  }\n}');
    await page.click('#scrub-button');
    const box = page.locator('#rules-json-error');
    await box.waitFor({ state: 'visible' });
    const text = await box.innerText();
    check(/line 3, column \d+/.test(text), `#rules-json-error says "${text}"`);
    // V8 names no position for short inputs: the page finds it itself.
    const input = await page.inputValue('#playground-input');
    await page.fill('#playground-input', '{"a": 1,\n "b": }');
    await page.click('#scrub-button');
    const inputBox = page.locator('#input-json-error');
    await inputBox.waitFor({ state: 'visible' });
    const inputText = await inputBox.innerText();
    check(/line 2, column 7/.test(inputText), `#input-json-error says "${inputText}"`);
    check(apiCalls.length === calls, 'invalid JSON was sent to the server');
    await page.fill('#playground-input', input);
  });

  await step('an invalid regex rule shows the server\'s error with its path under the editor', async () => {
    const rules = structuredClone(projectRules);
    rules.piiConfig ??= {};
    rules.piiConfig.rules ??= {};
    rules.piiConfig.applications ??= {};
    rules.piiConfig.rules[BAD_RULE] = {
      type: 'pattern',
      pattern: '([unclosed',
      redaction: { method: 'replace', text: '[x]' },
    };
    const apps = rules.piiConfig.applications;
    apps.$string = [...(Array.isArray(apps.$string) ? apps.$string : []), BAD_RULE];
    await page.fill('#playground-rules', JSON.stringify(rules, null, 2));
    const scrubbed = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/scrub');
    await page.click('#scrub-button');
    const resp = await scrubbed;
    check(resp.status() === 400, `an invalid pattern answered ${resp.status()}: ${(await resp.text()).slice(0, 300)}`);
    const path = `config.piiConfig.rules.${BAD_RULE}.pattern`;
    const err = page.locator('#rule-errors .error', { hasText: path });
    await err.first().waitFor({ state: 'visible' }).catch(async () => {
      throw new Failure(`no .error naming ${path}; #rule-errors shows ` +
        JSON.stringify(await page.locator('#rule-errors').innerText()) + '; server said ' + (await resp.text()));
    });
    await page.fill('#playground-rules', JSON.stringify(projectRules, null, 2));
  });

  await step('copy as project file shows the project id, keys and the rules', async () => {
    await page.click('#copy-project-file');
    const area = page.locator('#project-file-output');
    await area.waitFor({ state: 'visible' });
    const file = JSON.parse(await area.inputValue());
    check(String(file.projectId) === PROJECT, `projectId is ${file.projectId}`);
    check(Array.isArray(file.publicKeys) && file.publicKeys.length > 0, `publicKeys: ${JSON.stringify(file.publicKeys)}`);
    check(JSON.stringify(file.config) === JSON.stringify(projectRules), 'config differs from the editor');
  });

  await step('a pseudonym lookup for jane@example.com gives a user.email hash', async () => {
    await page.click('#tab-pseudonym');
    await page.selectOption('#pseudonym-project', PROJECT);
    await page.fill('#pseudonym-value', 'jane@example.com');
    const looked = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/pseudonym');
    await page.click('#pseudonym-button');
    const resp = await looked;
    check(resp.status() === 200, `POST /api/pseudonym answered ${resp.status()}: ${await resp.text()}`);
    const sent = resp.request().postDataJSON();
    check(String(sent.project) === PROJECT && sent.value === 'jane@example.com', `sent ${JSON.stringify(sent)}`);
    const rows = page.locator('#pseudonym-results tbody tr');
    await rows.first().waitFor({ state: 'visible' }).catch(() => {
      throw new Failure('no rows in #pseudonym-results');
    });
    const found = [];
    for (const row of await rows.all()) {
      found.push({
        selector: (await row.locator('td.selector').innerText()).trim(),
        replacement: (await row.locator('td.replacement').innerText()).trim(),
        query: (await row.locator('td.query code').innerText()).trim(),
      });
    }
    const email = found.find((r) => r.selector === 'user.email');
    check(email, `no user.email row: ${JSON.stringify(found)}`);
    check(/^[0-9a-f]{40}$/i.test(email.replacement), `user.email replacement is "${email.replacement}"`);
    check(email.query.includes(email.replacement), `query "${email.query}" does not search for the replacement`);
    check(email.replacement === scrubbedEmail,
      `lookup gives ${email.replacement} but scrubbing with the loaded rules wrote ${scrubbedEmail}`);
  });

  await step(`project ${PROJECT}'s details and samples render`, async () => {
    await page.click('#tab-projects');
    const samples = page.waitForResponse((r) => new URL(r.url()).pathname === `/api/projects/${PROJECT}/samples`);
    await page.click(`#project-${PROJECT} .project-open`);
    const resp = await samples;
    check(resp.status() === 200, `GET samples answered ${resp.status()}: ${await resp.text()}`);
    await page.locator('#project-detail').waitFor({ state: 'visible' });
    await page.locator('#applied-rules .applied-rule').first().waitFor({ state: 'visible' }).catch(() => {
      throw new Failure('no applied_in_order rules shown in #applied-rules');
    });
    const table = page.locator('#samples table');
    await table.waitFor({ state: 'visible' }).catch(async () => {
      throw new Failure('no samples table; #samples shows ' + JSON.stringify(await page.locator('#samples').innerText()));
    });
    const heads = (await table.locator('thead th').allInnerTexts()).map((s) => s.trim().toLowerCase());
    for (const h of ['rule', 'path', 'method', 'shape', 'shadow', 'event id', 'item type']) {
      check(heads.includes(h), `samples table has no "${h}" column: ${heads}`);
    }
    const n = await table.locator('tbody tr').count();
    if (EXPECT_SAMPLES) check(n > 0, 'EXPECT_SAMPLES=1 but the samples table is empty');
    if (n > 0) {
      const shadow = (await table.locator('tbody tr td.shadow').first().innerText()).trim();
      check(shadow === 'yes' || shadow === 'no', `shadow cell "${shadow}"`);
    }
    console.log(`  samples rows: ${n}`);
    await page.screenshot({ path: join(SHOTS, 'console-projects.png'), fullPage: true });
  });

  await step('no script errors and no CSP violations', async () => {
    check(pageErrors.length === 0, `uncaught errors in the page:\n${pageErrors.join('\n')}`);
    check(cspViolations.length === 0, `CSP violations:\n${cspViolations.join('\n')}`);
  });
}

let code = 0;
try {
  await main();
} catch (e) {
  code = 1;
  if (!(e instanceof Failure) && failed === 0) {
    failed += 1;
    console.log(`not ok - ${e && e.stack ? e.stack : e}`);
  }
  if (page) {
    const shot = join(SHOTS, 'console-failure.png');
    await page.screenshot({ path: shot, fullPage: true }).then(() => console.log(`  page at failure: ${shot}`), () => {});
  }
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
console.log(`screenshots: ${SHOTS}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(code);
