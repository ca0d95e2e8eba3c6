// Which Chrome/Chromium the browser tests drive (playwright-core never downloads one).
//   import { findBrowser, CHROMIUM_ARGS } from './browser.mjs'
//   node browser.mjs          prints the browser it found, or why none (exit 1)
// Order: $CHROME, $CHROMIUM (a path or a command name), then chromium, chromium-browser,
// google-chrome(-stable) on PATH, then the usual macOS application paths.
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run',
];

const NAMES = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'];
const MAC_APPS = [
  '/Applications/Chromium.app/Contents/MacOS/Chromium',
  '/Applications/Google Chrome.app/Contents/MacOS/Google Chrome',
];

function executable(path) {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

// A path as given, or a command name looked up on PATH.
function resolve(nameOrPath) {
  if (isAbsolute(nameOrPath) || nameOrPath.includes('/')) return executable(nameOrPath) ? nameOrPath : null;
  for (const dir of (process.env.PATH || '').split(delimiter)) {
    if (dir && executable(join(dir, nameOrPath))) return join(dir, nameOrPath);
  }
  return null;
}

export function findBrowser() {
  for (const v of ['CHROME', 'CHROMIUM']) {
    const given = process.env[v];
    if (!given) continue;
    const found = resolve(given);
    if (!found) throw new Error(`${v}=${given}: no such executable`);
    return found;
  }
  for (const name of NAMES) {
    const found = resolve(name);
    if (found) return found;
  }
  for (const app of MAC_APPS) if (executable(app)) return app;
  throw new Error('no Chrome or Chromium found: install one (Debian: apt-get install chromium; '
    + `scripts/setup-toolchain.sh does), or set CHROME=/path/to/it. Looked for ${NAMES.join(', ')} on PATH`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    console.log(findBrowser());
  } catch (e) {
    console.error(`browser: ${e.message}`);
    process.exit(1);
  }
}
