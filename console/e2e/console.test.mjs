// Browser test of the console: starts a real linggong-server (demo population,
// ephemeral ports, tokens for an operator, a reviewer, a township station and
// a county desk), drives Debian's Chromium with playwright-core, and checks:
// a reviewer signs in and approves a station's pending posting, a county desk
// posts and instant-matches, and the dashboard's figures change live from the
// watch streams; each role lands on a page it may use and sees only those;
// the review page shows an employer's details and history, complaints are
// listed, opened and their history shown, a worker is found by phone, and
// the ledger workbook downloads. Screenshots of every page go to target/console-screenshots/;
// any console error, page error or request to another origin fails the test.
//
// LINGGONG_SERVER: the server binary (default ../target/debug/linggong-server).
// CHROMIUM: the browser (default /usr/bin/chromium).

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const serverBin = process.env.LINGGONG_SERVER ?? join(repo, 'target', 'debug', 'linggong-server');
const browserBin = process.env.CHROMIUM ?? '/usr/bin/chromium';
const shots = join(repo, 'target', 'console-screenshots');
const docsShot = process.env.CONSOLE_DOCS_SCREENSHOT; // when set, the dashboard screenshot is also written there
const deadline = setTimeout(() => fail('the browser test did not finish within 240 s'), 240_000);

let server;
let browser;
let dataDir;

function fail(message) {
  console.error(`FAIL: ${message}`);
  cleanup().finally(() => process.exit(1));
}

async function cleanup() {
  clearTimeout(deadline);
  try {
    await browser?.close();
  } catch {}
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((r) => {
      const t = setTimeout(() => {
        server.kill('SIGKILL');
        r();
      }, 15_000);
      server.once('exit', () => {
        clearTimeout(t);
        r();
      });
    });
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

const token = () => randomBytes(24).toString('hex');
const sha = (t) => createHash('sha256').update(t).digest('hex');

async function startServer() {
  dataDir = mkdtempSync(join(tmpdir(), 'linggong-console-'));
  const tokens = { operator: token(), reviewer: token(), station: token(), desk: token() };
  const config = `
[[tokens]]
name = "e2e-operator"
sha256 = "${sha(tokens.operator)}"
role = "operator"

[[tokens]]
name = "e2e-reviewer"
sha256 = "${sha(tokens.reviewer)}"
role = "reviewer"

[[tokens]]
name = "e2e-station"
sha256 = "${sha(tokens.station)}"
role = "station"
counties = [141002]
township = "141002001"

[[tokens]]
name = "e2e-desk"
sha256 = "${sha(tokens.desk)}"
role = "county"
counties = [141002]
`;
  writeFileSync(join(dataDir, 'linggong.toml'), config);
  const ready = join(dataDir, 'ready');
  check(existsSync(serverBin), `no server binary at ${serverBin} (build it with cargo build -p linggong-server)`);
  server = spawn(
    serverBin,
    [
      '--listen', '127.0.0.1:0',
      '--http-listen', '127.0.0.1:0',
      '--data-dir', join(dataDir, 'data'),
      '--config', join(dataDir, 'linggong.toml'),
      '--durability', 'none',
      '--no-dev-token',
      '--demo',
      '--demo-workers', '3000',
      '--ready-file', ready,
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  server.once('exit', (code, signal) => {
    if (!stopping) fail(`the server exited early (code ${code}, signal ${signal})`);
  });
  for (let i = 0; i < 600 && !existsSync(ready); i++) await new Promise((r) => setTimeout(r, 200));
  check(existsSync(ready), 'the server wrote no ready file within 120 s');
  const line = readFileSync(ready, 'utf8').split('\n').find((l) => l.startsWith('http='));
  check(line, 'the ready file names no http address');
  return { origin: `http://${line.slice(5)}`, tokens };
}

let stopping = false;
const problems = [];

async function openPage(context, origin, name) {
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`${name}: console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`${name}: page error: ${e.message}`));
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(origin) && !u.startsWith('data:') && !u.startsWith('blob:')) problems.push(`${name}: request to another origin: ${u}`);
  });
  await page.goto(`${origin}/`);
  return page;
}

async function signIn(page, secret) {
  await page.fill('[data-testid=signin] input[name=token]', secret);
  await page.click('[data-testid=signin] button[type=submit]');
  await page.waitForSelector('header nav a', { timeout: 15_000 });
}

async function go(page, id) {
  await page.click(`header nav a[href="#/${id}"]`);
  await page.waitForFunction((h) => location.hash === h, `#/${id}`);
}

async function kpi(page, id) {
  return Number((await page.textContent(`[data-testid=${id}]`)).trim());
}

async function pickOnMap(page) {
  const map = page.locator('.map').first();
  await map.scrollIntoViewIfNeeded();
  const box = await map.boundingBox();
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  await page.waitForFunction(() => /WGS-84/.test(document.querySelector('[data-testid=picked]')?.textContent ?? ''));
}

async function main() {
  const { origin, tokens } = await startServer();
  console.log(`server at ${origin}`);
  mkdirSync(shots, { recursive: true });
  browser = await chromium.launch({
    executablePath: browserBin,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  const desktop = { viewport: { width: 1366, height: 768 }, locale: 'zh-CN' };

  // The console is served with a strict content policy and the SPA fallback.
  const index = await fetch(`${origin}/review`);
  check(index.ok && (await index.text()).includes('<div id="app">'), 'a console path does not fall back to index.html');
  check((index.headers.get('content-security-policy') ?? '').includes("connect-src 'self'"), 'no content security policy');
  const geo = await fetch(`${origin}/directory.geojson?crs=gcj02`);
  check(geo.ok && (await geo.json()).type === 'FeatureCollection', '/directory.geojson is not a feature collection');
  check((await fetch(`${origin}/directory.geojson?crs=mercator`)).status === 400, 'an unknown crs is not refused');

  // The operator watches the dashboard of Yaodu (141002).
  const opCtx = await browser.newContext(desktop);
  const op = await openPage(opCtx, origin, 'operator');
  await page0Keyboard(op);
  await signIn(op, tokens.operator);
  await go(op, 'dashboard');
  await op.waitForSelector('[data-testid=live].live', { timeout: 20_000 });
  await op.waitForSelector('.kpis[data-ready=yes]', { timeout: 15_000 });
  const open0 = await kpi(op, 'kpi-open');
  const offers0 = await kpi(op, 'kpi-offers');

  // A reviewer signs in and records an employer not yet verified.
  const revCtx = await browser.newContext(desktop);
  const rev = await openPage(revCtx, origin, 'reviewer');
  await signIn(rev, tokens.reviewer);
  await go(rev, 'review');
  const employer = `e-e2e-${Date.now().toString(36)}`;
  await rev.fill('[data-testid=employer-form] input[name=employerId]', employer);
  await rev.fill('[data-testid=employer-form] input[name=employerName]', '测试搬家');
  await rev.click('[data-testid=employer-form] button[type=submit]');
  await rev.waitForSelector(`[data-testid=review-message]:has-text("${employer}")`);

  // A township station posts for it: the posting waits for review.
  const stCtx = await browser.newContext(desktop);
  const st = await openPage(stCtx, origin, 'station');
  await signIn(st, tokens.station);
  // A station lands on a page it may use; pages it may not are not offered.
  await st.waitForFunction(() => location.hash === '#/post');
  const stNav = await st.locator('header nav a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
  check(JSON.stringify(stNav) === JSON.stringify(['#/post', '#/directory']), `a station is offered ${stNav}`);
  await st.goto(`${origin}/#/review`);
  await st.waitForSelector('main h1');
  check((await st.textContent('main')).indexOf('PermissionDenied') < 0, 'a station sees PERMISSION_DENIED');
  check((await st.locator('#review-h').count()) === 0, 'a station is shown the review page');
  await go(st, 'post');
  const pending = `p-e2e-st-${Date.now().toString(36)}`;
  await st.fill('input[name=postingId]', pending);
  await st.fill('input[name=employerId]', employer);
  await st.fill('input[name=township]', '141002001');
  await st.selectOption('select[name=county]', '141002');
  await pickOnMap(st);
  await st.click('[data-testid=post-form] button[type=submit]');
  await st.waitForSelector('[data-testid=posted]:has-text("待审核")', { timeout: 15_000 });
  await st.screenshot({ path: join(shots, 'post-station.png'), fullPage: true });

  // The reviewer approves it; the dashboard's open postings go up live.
  await rev.click('button:has-text("刷新")');
  const row = rev.locator(`tr[data-posting="${pending}"]`);
  await row.waitFor({ timeout: 15_000 });
  await rev.screenshot({ path: join(shots, 'review-pending.png'), fullPage: true });
  // The employer's details and history (who recorded it), and the posting's.
  await row.locator('[data-testid=show-employer]').click();
  await rev.waitForSelector(`[data-testid=employer-details] dd:has-text("${employer}")`, { timeout: 10_000 });
  await rev.waitForSelector('[data-testid=employer-details] [data-testid=history] td:has-text("e2e-reviewer")', { timeout: 10_000 });
  await rev.waitForSelector('[data-testid=employer-details] [data-testid=history] td:has-text("e2e-station")', { timeout: 10_000 });
  await rev.screenshot({ path: join(shots, 'review-employer.png'), fullPage: true });
  await row.locator('button.primary').click();
  await rev.waitForSelector(`[data-testid=review-message]:has-text("${pending}")`);
  await op.waitForFunction(
    (n) => Number(document.querySelector('[data-testid=kpi-open]')?.textContent) === n + 1,
    open0,
    { timeout: 15_000 },
  );
  await op.waitForSelector(`[data-testid=events] li:has-text("${pending}")`, { timeout: 5_000 });

  // A county desk posts for a verified employer and instant-matches.
  const deskCtx = await browser.newContext(desktop);
  const desk = await openPage(deskCtx, origin, 'desk');
  await signIn(desk, tokens.desk);
  await go(desk, 'post');
  const posted = `p-e2e-desk-${Date.now().toString(36)}`;
  await desk.fill('input[name=postingId]', posted);
  await desk.fill('input[name=employerId]', 'e0');
  await desk.fill('input[name=headcount]', '3');
  await desk.fill('input[name=distance]', '60');
  await desk.selectOption('select[name=county]', '141002');
  await desk.selectOption('select[name=source]', '1');
  await desk.selectOption('select[name=tradeId]', 'porter');
  await pickOnMap(desk);
  await desk.click('[data-testid=post-form] button[type=submit]');
  await desk.waitForSelector('[data-testid=posted]:has-text("已发布")', { timeout: 15_000 });
  await desk.click('[data-testid=match]');
  await desk.waitForSelector('[data-testid=offers] table tbody tr', { timeout: 15_000 });
  const phones = await desk.locator('[data-testid=offers] td.phone').allTextContents();
  check(phones.length > 0, 'the instant match offered nobody');
  for (const p of phones) check(/^(\d{3} \d{4} \d{4}|[0-9+\- ]*\*+[0-9]*)$/.test(p.trim()), `unexpected phone display: ${p}`);
  await desk.screenshot({ path: join(shots, 'post-match.png'), fullPage: true });
  console.log(`instant match offered ${phones.length} workers: ${phones.join(', ')}`);

  // The dashboard's offers made and today's instant matches follow live.
  await op.waitForFunction(
    (n) => Number(document.querySelector('[data-testid=kpi-offers]')?.textContent) >= n,
    offers0 + phones.length,
    { timeout: 15_000 },
  );
  await op.waitForFunction(() => Number(document.querySelector('[data-testid=kpi-matches]')?.textContent) >= 1, null, { timeout: 15_000 });
  await op.waitForTimeout(500); // let the charts settle before the picture
  await op.screenshot({ path: join(shots, 'dashboard.png') });
  if (docsShot) await op.screenshot({ path: docsShot });
  console.log(`dashboard: open postings ${open0} -> ${await kpi(op, 'kpi-open')}, offers ${offers0} -> ${await kpi(op, 'kpi-offers')}`);

  // Complaints: the reviewer files one against the new employer, finds it in
  // the open list, opens it and sees its history.
  await go(rev, 'complaints');
  await rev.waitForSelector('main h1');
  await rev.fill('form:has-text("登记投诉") input[required]', employer);
  await rev.fill('form:has-text("登记投诉") textarea', '工资未按时发放');
  await rev.click('form:has-text("登记投诉") button[type=submit]');
  await rev.waitForSelector('p.ok:has-text("已登记投诉")', { timeout: 10_000 });
  const complaintRow = rev.locator(`[data-testid=complaints-table] tr:has-text("${employer}")`).first();
  await complaintRow.waitFor({ timeout: 10_000 });
  await complaintRow.locator('button').click();
  await rev.waitForSelector(`[data-testid=complaint-detail] dd:has-text("${employer}")`, { timeout: 10_000 });
  await rev.waitForSelector('[data-testid=complaint-detail] [data-testid=history] td:has-text("e2e-reviewer")', { timeout: 10_000 });
  await rev.screenshot({ path: join(shots, 'complaints-detail.png'), fullPage: true });

  // Workers: found by id, then by the phone shown, with the history.
  await go(op, 'workers');
  await op.fill('input[name=lookupId]', 'w0');
  await op.click('form:has(input[name=lookupId]) button[type=submit]');
  await op.waitForSelector('[data-testid=worker-details]');
  const phone = (await op.textContent('[data-testid=worker-details] dd.phone')).trim();
  check(/\d{4}/.test(phone), `the operator sees no phone for w0: ${phone}`);
  await op.fill('input[name=lookupPhone]', phone);
  await op.click('[data-testid=phone-lookup] button[type=submit]');
  await op.waitForSelector('[data-testid=worker-details] dd:has-text("w0"), [data-testid=phone-matches] li:has-text("w0")', { timeout: 10_000 });
  await op.waitForSelector('[data-testid=history]', { timeout: 10_000 });
  await op.screenshot({ path: join(shots, 'workers-phone.png'), fullPage: true });

  // Ledger: the server's workbook downloads as an xlsx (a zip).
  await go(op, 'ledger');
  await op.waitForSelector('[data-testid=workbook]');
  const [download] = await Promise.all([op.waitForEvent('download', { timeout: 20_000 }), op.click('[data-testid=workbook] button[type=submit]')]);
  check(download.suggestedFilename().endsWith('.xlsx'), `the workbook is named ${download.suggestedFilename()}`);
  const saved = join(dataDir, 'ledger.xlsx');
  await download.saveAs(saved);
  check(readFileSync(saved).subarray(0, 2).toString() === 'PK', 'the workbook is not an xlsx (zip) file');
  await op.waitForSelector('[data-testid=workbook-message]');

  // Every page, at an office screen and on a phone, in both languages.
  for (const id of ['review', 'complaints', 'post', 'workers', 'ledger', 'directory']) {
    await go(op, id);
    await op.waitForSelector('main h1');
    if (id === 'ledger') await op.waitForSelector('[data-testid=ledger-table] tbody tr', { timeout: 30_000 });
    if (id === 'directory') {
      // The operator adds Yaodu's county market; the map, the table and the standards check follow.
      await op.waitForSelector('[data-testid=standards] tbody tr', { timeout: 10_000 });
      await op.fill('input[name=marketId]', 'yaodu-market');
      await op.fill('input[name=marketName]', '尧都区零工市场');
      await op.fill('input[name=marketAddress]', '解放路1号');
      await op.fill('input[name=marketArea]', '320');
      await op.fill('input[name=marketHotline]', '0357-1234567');
      await op.click('[data-testid=market-form] button[type=submit]');
      await op.waitForSelector('[data-testid=markets] td:has-text("尧都区零工市场")', { timeout: 10_000 });
      await op.waitForSelector('[data-testid=standards] tr:has-text("尧都区") .verdict.pass', { timeout: 10_000 });
      const geo = await (await fetch(`${origin}/directory.geojson`)).json();
      check(geo.features.some((f) => f.id === 'yaodu-market'), 'the new market is not in /directory.geojson');
    }
    await op.screenshot({ path: join(shots, `${id}.png`), fullPage: true });
  }
  await op.click('[data-testid=lang]');
  await op.waitForSelector('header nav a:has-text("Dashboard")');
  await go(op, 'dashboard');
  await op.waitForSelector('[data-testid=live].live', { timeout: 20_000 });
  await op.screenshot({ path: join(shots, 'dashboard-en.png') });

  const phoneCtx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: 'zh-CN' });
  const mobile = await openPage(phoneCtx, origin, 'phone');
  await signIn(mobile, tokens.desk);
  for (const id of ['post', 'dashboard']) {
    await go(mobile, id);
    await mobile.waitForSelector('main h1');
    const overflow = await mobile.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 1, `the ${id} page is ${overflow}px wider than a phone screen`);
    await mobile.screenshot({ path: join(shots, `phone-${id}.png`), fullPage: true });
  }

  check(problems.length === 0, `problems in the browser:\n  ${problems.join('\n  ')}`);
  console.log(`console browser test passed; screenshots in ${shots}`);
}

/** Keyboard: the first Tab reaches the skip link, then the language switch, then the token field. */
async function page0Keyboard(page) {
  const focused = () => page.evaluate(() => {
    const el = document.activeElement;
    return el ? `${el.tagName.toLowerCase()}${el.getAttribute('name') ? `[name=${el.getAttribute('name')}]` : ''}.${el.className}` : '';
  });
  const stops = [];
  for (let i = 0; i < 3; i++) {
    await page.keyboard.press('Tab');
    stops.push(await focused());
  }
  check(stops[0].startsWith('a.skip'), `the first Tab stop is ${stops[0]}, not the skip link`);
  check(stops[1].includes('[data-testid') || stops[1].startsWith('button'), `the second Tab stop is ${stops[1]}`);
  check(stops[2].startsWith('input[name=token]'), `the third Tab stop is ${stops[2]}, not the token field`);
}

main()
  .then(async () => {
    stopping = true;
    await cleanup();
    process.exit(0);
  })
  .catch((e) => {
    stopping = true;
    fail(e?.stack ?? String(e));
  });
