// Debian's Chromium driven by playwright-core, each context in a fresh
// profile directory. Pages record console errors, CSP violations and
// uncaught exceptions so a test can assert the app ran cleanly.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './harness.mjs';

// Every browser test's screenshots (not committed).
export const SCREENSHOTS = join(ROOT, 'tests', 'artifacts');
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];

// A browser with a fresh profile. Returns {context, page, problems, close}.
// `args`: extra Chromium switches (e.g. --ignore-certificate-errors-spki-list
// to trust one test certificate).
export async function openBrowser({ viewport = { width: 1280, height: 800 }, args = [] } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'sbx-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.SBX_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [...ARGS, ...args],
    viewport,
    acceptDownloads: true,
  });
  // Generous: on a loaded machine (several suites beside each other) a
  // page can take far longer than Playwright's default 30 s to draw.
  context.setDefaultTimeout(60000);
  context.setDefaultNavigationTimeout(60000);
  const problems = [];
  const watch = (page) => {
    page.on('console', (m) => {
      // A failed fetch is logged by Chromium itself; the app shows those.
      if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  };
  context.on('page', watch);
  const page = context.pages()[0] || await context.newPage();
  watch(page);
  return {
    context, page, problems,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  // From the top: a sticky header would otherwise be drawn mid-page.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

// On a phone the nav is folded behind the menu button: opens it (when it is
// there and closed) and clicks the entry `name`.
export async function navTo(page, name) {
  const toggle = page.locator('#menu-toggle');
  if (await toggle.isVisible() && (await toggle.getAttribute('aria-expanded')) !== 'true') await toggle.click();
  await page.getByRole('navigation').getByRole('link', { name, exact: true }).click();
}

// Logs in through the login page and waits for the overview.
export async function logIn(page, core, user) {
  await page.goto(`${core.base}/login`);
  try { await page.locator('#username').waitFor(); } catch (e) {
    // Say what the page was doing: its body and the requests it made (a
    // module that never came would leave "Loading…").
    const body = (await page.locator('body').textContent().catch(() => '')).slice(0, 200);
    const res = await page.evaluate(() => performance.getEntriesByType('resource')
      .map((r) => `${r.name.replace(/^https?:\/\/[^/]+/, '')} ${Math.round(r.duration)}ms ${r.responseStatus}`)).catch(() => []);
    throw new Error(`the login page did not draw: body "${body.trim()}"; requests: ${res.join(', ')} (${e.message})`);
  }
  await page.locator('#username').fill(user.username);
  await page.locator('#password').fill(user.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL('**/overview');
}
