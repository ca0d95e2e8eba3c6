// Browser benchmarks of the simulator (docs/bench-web.md), in headless Chrome/Chromium (the one
// browser.mjs finds; the published figures are Debian's Chromium).
//   node bench.mjs URL OUT_DIR DIST_DIR
// 1. Animation: the fixed-size preset (11,000 files), baseline + proposed side by side, played
//    at 100× for 10 s; per-frame main-thread work from the page's "frame" performance measures
//    (tick → reducer → render → canvas, see web/src/app.rs).
// 2. Paper view: both data sets, 5..100 Mbps step 5, three policies, 5 seeds at scale 1; the
//    time to finish, and how late a 50 ms timer fires meanwhile (the page's responsiveness).
// 3. Release size: the .wasm and .js in dist/.
import { chromium } from 'playwright-core';
import { findBrowser, CHROMIUM_ARGS } from './browser.mjs';
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [url, out, dist] = process.argv.slice(2);

function stats(values) {
  const v = [...values].sort((a, b) => a - b);
  const at = (q) => v[Math.min(v.length - 1, Math.floor(q * v.length))];
  const mean = v.reduce((a, b) => a + b, 0) / Math.max(1, v.length);
  return { count: v.length, mean, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: v[v.length - 1] };
}

const browser = await chromium.launch({ executablePath: findBrowser(), args: CHROMIUM_ARGS });
const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
const result = { date: new Date().toISOString(), chromium: browser.version() };

// ---- 1. animation of the 11,000-file preset
await page.goto(`${url}?data=fixed&scale=1&bw=20&seed=1&policies=baseline,proposed`);
await page.waitForSelector('#run');
await page.click('#run');
await page.evaluate(() => {
  performance.clearMeasures('frame');
  performance.clearMeasures('charts');
  window.__gaps = [];
  let last = performance.now();
  const loop = (t) => { window.__gaps.push(t - last); last = t; window.__raf = requestAnimationFrame(loop); };
  window.__raf = requestAnimationFrame(loop);
});
await page.waitForTimeout(10_000);
const animation = await page.evaluate(() => {
  cancelAnimationFrame(window.__raf);
  return {
    frames: performance.getEntriesByName('frame').map((e) => e.duration),
    charts: performance.getEntriesByName('charts').map((e) => e.duration),
    gaps: window.__gaps.slice(1),
    clock: Number(document.querySelector('#clock').dataset.clock),
  };
});
await page.screenshot({ path: join(out, 'bench-animation.png') });
result.animation = {
  work_ms: stats(animation.frames),
  frame_interval_ms: stats(animation.gaps),
  chart_update_ms: stats(animation.charts),
  simulated_seconds: animation.clock,
  over_16ms: animation.frames.filter((d) => d > 16).length,
};
console.log('animation: per-frame work (ms)', result.animation.work_ms);
console.log('animation: frame intervals (ms)', result.animation.frame_interval_ms);
console.log('animation: chart updates (ms)', result.animation.chart_update_ms);

// ---- 2. paper view at the paper's scale: with web workers (the default), then on the page's
// own thread in 12 ms slices (URL workers=0).
async function paperView(query) {
  await page.goto(`${url}?${query}`);
  await page.click('#tab-paper');
  await page.fill('#paper-seeds', '5');
  await page.fill('#paper-scale', '1');
  await page.evaluate(() => {
    window.__late = [];
    let expected = performance.now() + 50;
    window.__probe = setInterval(() => {
      const now = performance.now();
      window.__late.push(now - expected);
      expected = now + 50;
    }, 50);
  });
  const started = Date.now();
  await page.click('#paper-start');
  await page.waitForFunction(() => document.querySelector('#paper-progress')?.dataset.finished === 'true',
    null, { timeout: 600_000, polling: 500 });
  const wall = Date.now() - started;
  const paper = await page.evaluate(() => {
    clearInterval(window.__probe);
    const p = document.querySelector('#paper-progress');
    return { runs: Number(p.dataset.total), elapsed_ms: Number(p.dataset.elapsedMs), text: p.textContent, late: window.__late };
  });
  const summary = { runs: paper.runs, elapsed_ms: paper.elapsed_ms, wall_ms: wall, mode: paper.text.split(' · ').pop(),
    timer_lateness_ms: stats(paper.late) };
  console.log('paper view:', summary.mode, paper.runs, 'runs in', paper.elapsed_ms, 'ms; 50 ms timer lateness', summary.timer_lateness_ms);
  return summary;
}
result.paper = await paperView('');
await page.screenshot({ path: join(out, 'bench-paper.png'), fullPage: true });
result.paper_slices = await paperView('workers=0');

// ---- 3. release size
const files = readdirSync(dist).filter((f) => /\.(wasm|js)$/.test(f));
result.size = Object.fromEntries(files.map((f) => [f, statSync(join(dist, f)).size]));
result.size.total = files.reduce((a, f) => a + statSync(join(dist, f)).size, 0);
console.log('release size (bytes):', result.size);

writeFileSync(join(out, 'bench.json'), JSON.stringify(result, null, 2) + '\n');
await browser.close();
