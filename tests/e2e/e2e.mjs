// End-to-end test of the simulator in headless Chrome/Chromium (the one browser.mjs finds),
// driven like a user would.
//   node e2e.mjs URL OUT_DIR EXPECTED_DIR WORKLOAD
// EXPECTED_DIR holds `migrate-native simulate --json` outputs written by run.sh:
//   fixed-<policy>.json, trace-<policy>.json, workload-<policy>.json (the shipped trace
//   WORKLOAD), lifetimes-<policy>.json (a version-2 trace whose files appear and vanish), and
//   the `sweep --format json` of the catalogue with the command that made it.
import { chromium } from 'playwright-core';
import { findBrowser, CHROMIUM_ARGS } from './browser.mjs';
import { readFileSync, mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

const [url, out, expectedDir, workload] = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
mkdirSync(out, { recursive: true });

const expected = (name) => JSON.parse(readFileSync(join(expectedDir, `${name}.json`), 'utf8'));
let step = 0;
const log = (what) => console.log(`e2e ${++step}: ${what}`);

const browser = await chromium.launch({ executablePath: findBrowser(), args: CHROMIUM_ARGS });
const context = await browser.newContext({ viewport: { width: 1440, height: 1000 }, acceptDownloads: true });
const page = await context.newPage();
const errors = [];
// Requests this test fails on purpose (a trace's 404, going offline): Chromium logs them.
const failedOnPurpose = [];
page.on('pageerror', (e) => errors.push(String(e)));
page.on('console', (m) => {
  if (m.type() === 'error' && !failedOnPurpose.some((re) => re.test(m.location().url ?? ''))) errors.push(m.text());
});

async function runToEnd() {
  if (await page.textContent('#play-status') !== 'finished') await page.click('#finish');
  await page.waitForFunction(() => document.querySelector('#play-status')?.textContent === 'finished',
    null, { timeout: 120_000 });
}

// A shipped trace's URL in dist/ (versioned by its digest: web/src/catalogue.rs).
const traceUrl = (name) => new RegExp(`/traces/${name}\\.jsonl\\.zst\\?v=[0-9a-f]{16}$`);

// The figures the page shows for one policy, from the results table's data attributes.
async function shown(policy) {
  return page.$eval(`#results-table tr[data-policy="${policy}"]`, (tr) => ({ ...tr.dataset }));
}

function compare(policy, row, cli) {
  const pairs = [
    ['precopyBytes', cli.precopy_bytes], ['finalBytes', cli.final_bytes],
    ['downtimeS', cli.downtime_s], ['totalTimeS', cli.total_time_s],
    ['precopyTimeS', cli.precopy_time_s], ['rounds', cli.rounds],
    ['resentBytes', cli.resent_bytes], ['resentFiles', cli.resent_files],
  ];
  for (const [key, want] of pairs) {
    // Both sides print the shortest text that round-trips the same f64: equal numbers, exactly.
    assert.equal(Number(row[key]), want, `${policy} ${key}: page ${row[key]}, CLI ${want}`);
  }
  assert.equal(row.endReason, cli.end_reason.kind, `${policy} end reason`);
}

// Every line of a chart has points, and the page prints no NaN or empty figure in it.
async function chartDrawn(id, lines) {
  const points = await page.$$eval(`svg#${id} .series polyline`, (ps) => ps.map((p) => p.getAttribute('points').trim()));
  assert.equal(points.length, lines, `${id}: ${points.length} lines`);
  for (const p of points) assert.match(p, /^\d+(\.\d+)?,\d+(\.\d+)?( |$)/, `${id}: points "${p.slice(0, 40)}"`);
  const text = await page.textContent(`svg#${id}`);
  assert.doesNotMatch(text, /NaN|undefined|Infinity/, `${id} text`);
}

const goneCount = (policy) => page.textContent(
  `.lane[data-policy="${policy}"] .legend li[data-state="gone (unlinked or replaced)"] .n`);

async function downloadJson(selector) {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
  return JSON.parse(readFileSync(await download.path(), 'utf8'));
}

try {
  log('open the page');
  await page.goto(url);
  await page.waitForSelector('h1');
  await page.screenshot({ path: join(out, '01-start.png') });

  log('configure through the controls: fixed, scale 0.1, 20 Mbps, seed 3, baseline + proposed');
  await page.selectOption('#dataset', 'fixed');
  await page.fill('#scale', '0.1');
  await page.fill('#bandwidth', '20');
  await page.fill('#seed', '3');
  for (const p of ['baseline', 'proposed']) assert.ok(await page.isChecked(`#policy-${p}`), p);
  for (const p of ['sweep', 'qemu', 'clairvoyant']) assert.ok(!(await page.isChecked(`#policy-${p}`)), p);

  log('run, watch a few seconds, then run to the end');
  await page.click('#run');
  await page.selectOption('#speed', '30');
  // Watch it play for a while: until the shared clock passes 60 simulated seconds.
  await page.waitForFunction(() => Number(document.querySelector('#clock')?.dataset.clock) >= 60, null, { timeout: 60_000 });
  await page.screenshot({ path: join(out, '02-playing.png'), fullPage: true });
  assert.equal(await page.locator('.lane').count(), 2);
  await runToEnd();
  await page.screenshot({ path: join(out, '03-finished.png'), fullPage: true });

  log('the figures on the page equal migrate-native simulate --json, exactly');
  for (const policy of ['baseline', 'proposed']) compare(policy, await shown(policy), expected(`fixed-${policy}`));
  const reason = await page.$eval('.lane[data-policy="proposed"] .end-reason', (e) => e.dataset.endReason);
  assert.match(reason, /^mean of last 5 \/ first 5 = 1\.\d{4}, within \[0\.99, 1\.01\]$/);

  log('the JSON export equals the CLI output, series and configuration included');
  const exported = await downloadJson('#export-json');
  assert.deepEqual(exported, [expected('fixed-baseline'), expected('fixed-proposed')]);

  log('the link reproduces the configuration');
  const link = await page.$eval('#share-link', (a) => a.href);
  assert.match(link, /scale=0\.1/);
  assert.equal(page.url(), link, 'the address bar holds the run');
  const linked = await context.newPage();
  await linked.goto(link);
  await linked.waitForSelector('#scale');
  assert.equal(await linked.inputValue('#scale'), '0.1');
  assert.equal(await linked.inputValue('#seed'), '3');
  assert.equal(await linked.inputValue('#bandwidth'), '20');
  await linked.close();

  log('a bad value shows an inline error and disables Run');
  await page.fill('#beta', '3');
  const message = await page.textContent('#beta-msg');
  assert.match(message, /even/);
  assert.ok(await page.isDisabled('#run'));
  await page.screenshot({ path: join(out, '04-bad-input.png') });
  await page.fill('#beta', '10');
  assert.ok(await page.isEnabled('#run'));

  log('a malformed trace names its line');
  await page.selectOption('#dataset', 'trace');
  await page.setInputFiles('#import-file', join(here, 'fixtures', 'bad-trace.jsonl'));
  await page.waitForSelector('#import-error');
  assert.match(await page.textContent('#import-error'), /line 4: write to read-only file id 0/);
  assert.ok(await page.isDisabled('#run'));

  log('import a trace and replay it');
  await page.setInputFiles('#import-file', join(here, 'fixtures', 'small-trace.jsonl'));
  await page.waitForSelector('#trace-summary');
  assert.match(await page.textContent('#trace-summary'), /12 files, 1289 writes/);
  await page.click('#run');
  await runToEnd();
  for (const policy of ['baseline', 'proposed']) compare(policy, await shown(policy), expected(`trace-${policy}`));
  await page.screenshot({ path: join(out, '05-trace.png'), fullPage: true });

  log(`pick a real workload (${workload}) on a fresh page: it has a description, replays as the CLI does`);
  await page.goto(url);
  await page.waitForSelector('#dataset');
  const option = await page.$eval(`#dataset option[value="${workload}"]`, (o) => o.textContent);
  assert.match(option, new RegExp(`^${workload}: .{12,}`), 'the option says what ran');
  // The trace is fetched only now: hold its response to see the loading state.
  const trace = traceUrl(workload);
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  await page.route(trace, async (route) => { await held; await route.continue(); });
  await page.selectOption('#dataset', workload);
  await page.waitForSelector('#workload-summary[data-state="loading"]');
  assert.match(await page.textContent('#workload-summary'), new RegExp(`^Loading traces/${workload}\\.jsonl\\.zst \\([\\d.]+ [KM]B\\)…$`));
  assert.ok(await page.isDisabled('#run'), 'no run before the trace is there');
  assert.equal(await page.textContent('#run-blocked'), 'Waiting for the trace');
  await page.screenshot({ path: join(out, '06-workload-loading.png') });
  release();
  await page.waitForSelector('#workload-summary[data-state="ready"]');
  await page.unroute(trace);
  assert.match(await page.textContent('#workload-summary'), /· \d+ files, \d+\.\d MB · \d+ s recorded \(trace v[12]\)$/);
  assert.equal(await page.inputValue('#after'), '20000s', 'the docs\' loop is the default');
  assert.equal(await page.inputValue('#bandwidth'), '20');
  await page.click('#run');
  await runToEnd();
  for (const policy of ['baseline', 'proposed']) compare(policy, await shown(policy), expected(`workload-${policy}`));
  for (const id of ['chart-u', 'chart-precopy', 'chart-resent']) await chartDrawn(id, 2);
  assert.equal(await page.locator('svg#chart-downtime g[data-policy]').count(), 2);
  assert.match(page.url(), new RegExp(`data=${workload}`), 'the link names the workload');
  await page.screenshot({ path: join(out, '06-workload.png'), fullPage: true });

  log('the link to that run on a fresh page: the trace is fetched, then the run gives the same figures');
  await page.goto(page.url());
  await page.waitForSelector('#workload-summary[data-state="ready"]');
  await page.click('#run');
  await runToEnd();
  for (const policy of ['baseline', 'proposed']) compare(policy, await shown(policy), expected(`workload-${policy}`));

  log('a trace that cannot be fetched (404, offline): the data-set line says which and why; the rest works');
  failedOnPurpose.push(traceUrl('redis'), traceUrl('nginx'));
  await page.route(traceUrl('redis'), (route) => route.fulfill({ status: 404, body: 'gone' }));
  await page.goto(`${url}?data=redis`);
  await page.waitForSelector('#workload-summary[data-state="failed"]');
  assert.match(await page.textContent('#workload-summary'), /^redis: could not load traces\/redis\.jsonl\.zst: HTTP 404\b/);
  assert.ok(await page.isDisabled('#run'));
  await page.screenshot({ path: join(out, '06-workload-404.png') });
  await page.route(traceUrl('nginx'), (route) => route.abort('internetdisconnected'));
  await page.selectOption('#dataset', 'nginx');
  await page.waitForSelector('#workload-summary[data-state="failed"]');
  assert.match(await page.textContent('#workload-summary'),
    /^nginx: could not load traces\/nginx\.jsonl\.zst: network error \(.+\): offline, or the server stopped\?$/);
  await page.selectOption('#dataset', 'fixed');
  assert.ok(await page.isEnabled('#run'), 'the presets still run');

  log('a version-2 trace: files appear when created and are crossed out when unlinked or replaced');
  await page.selectOption('#dataset', 'trace');
  await page.setInputFiles('#import-file', join(here, 'fixtures', 'lifetimes-v2.jsonl'));
  await page.waitForSelector('#trace-summary');
  await page.fill('#bandwidth', '1');
  await page.fill('#seed', '3');
  await page.click('#run');
  await page.selectOption('#speed', '10');
  // Mid-run, after the unlink (3.8 s) and the rename over /d/data (6.5 s).
  await page.waitForFunction(() => Number(document.querySelector('#clock')?.dataset.clock) >= 7, null, { timeout: 60_000 });
  for (const policy of ['baseline', 'proposed']) assert.equal(await goneCount(policy), '2', `${policy}: gone files`);
  await page.screenshot({ path: join(out, '07-lifetimes.png'), fullPage: true });
  await runToEnd();
  for (const policy of ['baseline', 'proposed']) {
    compare(policy, await shown(policy), expected(`lifetimes-${policy}`));
    assert.equal(await goneCount(policy), '2', `${policy}: gone files at the end`);
  }

  log('the paper view computes the figures (web workers), with progress');
  await page.click('#tab-paper');
  await page.fill('#paper-seeds', '2');
  await page.fill('#paper-scale', '0.1');
  await page.click('#paper-start');
  await page.waitForSelector('#paper-progress');
  await page.waitForFunction(() => document.querySelector('#paper-progress')?.dataset.finished === 'true',
    null, { timeout: 300_000 });
  assert.equal(await page.locator('#claims-table tbody tr').count(), 5);
  assert.equal(await page.locator('svg[id^="figure-"]').count(), 4);
  await page.screenshot({ path: join(out, '08-paper.png'), fullPage: true });

  log('the paper view runs the catalogue: its cells are migrate-native sweep\'s, for the command it shows');
  const sweep = expected('catalogue');
  for (const box of await page.$$('input[id^="eval-workload-"]')) {
    if ((await box.getAttribute('id')) !== 'eval-workload-sqlite' && await box.isChecked()) await box.uncheck();
  }
  await page.fill('#eval-bandwidths', '20,100');
  // Its trace is fetched only now: hold the response to see the catalogue wait for it.
  let releaseSqlite;
  const sqliteHeld = new Promise((resolve) => { releaseSqlite = resolve; });
  await page.route(traceUrl('sqlite'), async (route) => { await sqliteHeld; await route.continue(); });
  await page.click('#eval-start');
  await page.waitForSelector('#eval-loading');
  assert.match(await page.textContent('#eval-loading'), /^Loading traces\/sqlite\.jsonl\.zst \([\d.]+ [KM]B\)…$/);
  await page.locator('#catalogue').screenshot({ path: join(out, '09-catalogue-loading.png') });
  releaseSqlite();
  await page.unroute(traceUrl('sqlite'));
  await page.waitForFunction(() => document.querySelector('#eval-progress')?.dataset.finished === 'true',
    null, { timeout: 300_000 });
  assert.equal((await page.textContent('#eval-command')).trim(),
    readFileSync(join(expectedDir, 'catalogue-command.txt'), 'utf8').trim());
  const cells = await page.$$eval('.workload-results[data-workload="sqlite"] td[data-policy]', (tds) => tds.map((td) => ({
    policy: td.dataset.policy, bandwidth: Number(td.parentElement.dataset.bandwidth),
    precopy: Number(td.dataset.precopyBytes), downtime: Number(td.dataset.downtimeS) })));
  assert.equal(cells.length, sweep.length);
  for (const cli of sweep) {
    const cell = cells.find((c) => c.policy === cli.policy && c.bandwidth === cli.bandwidth_mbps);
    assert.ok(cell, `${cli.policy} at ${cli.bandwidth_mbps} Mbit/s on the page`);
    assert.equal(cell.precopy, cli.precopy_bytes.mean, `${cli.policy} ${cli.bandwidth_mbps}: pre-copy bytes`);
    assert.equal(cell.downtime, cli.downtime_s.mean, `${cli.policy} ${cli.bandwidth_mbps}: downtime`);
  }
  await chartDrawn('tradeoff-sqlite', 6);
  await page.locator('#catalogue').scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(out, '09-catalogue.png'), fullPage: true });

  log('the catalogue with a trace that cannot be fetched: it says which, and keeps the last results');
  await page.uncheck('#eval-workload-sqlite');
  await page.check('#eval-workload-nginx');
  await page.click('#eval-start');
  await page.waitForSelector('#eval-error');
  assert.match(await page.textContent('#eval-error'), /^nginx: could not load traces\/nginx\.jsonl\.zst: network error/);
  assert.ok(await page.isEnabled('#eval-start'), 'the catalogue can be run again (and tries again)');
  assert.equal(await page.locator('.workload-results[data-workload="sqlite"] td[data-policy]').count(), sweep.length);

  log('a narrow window: the catalogue and the simulator still fit');
  await page.setViewportSize({ width: 390, height: 900 });
  await page.screenshot({ path: join(out, '10-catalogue-narrow.png'), fullPage: true });
  const sideways = () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(await sideways() <= 1, `the paper view scrolls sideways by ${await sideways()} px`);
  await page.click('#tab-simulator');
  await page.waitForSelector('#workload-summary, #trace-summary');
  await page.screenshot({ path: join(out, '11-simulator-narrow.png'), fullPage: true });
  assert.ok(await sideways() <= 1, `the simulator scrolls sideways by ${await sideways()} px`);

  assert.deepEqual(errors, [], 'no errors in the console');
  console.log('e2e: all checks passed; screenshots in', out);
} catch (e) {
  await page.screenshot({ path: join(out, 'failure.png'), fullPage: true }).catch(() => {});
  console.error('e2e: FAILED:', e.message);
  if (errors.length) console.error('page errors:', errors);
  process.exitCode = 1;
} finally {
  await browser.close();
}
