import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { spawnGateway } from '../support/process.js';

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

describe('the live page in a real browser (Debian Chromium, headless)', () => {
  it('shows prices that change and a depth chart, with no outside request, and reconnects by itself after a gateway restart', async () => {
    // A process (with its default worker threads, each serving the page), restarted on the same port.
    let gw = await spawnGateway({ SIM_EVENTS_PER_SEC: '50' });
    const port = gw.port;
    const httpUrl = `http://127.0.0.1:${port}`;
    const stop = async () => {
      gw.child.kill('SIGTERM');
      await gw.exited();
    };
    const profile = mkdtempSync(join(tmpdir(), 'mbg-chromium-'));
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: { width: 800, height: 900 },
    });
    try {
      const outside: string[] = [];
      await browser.route('**/*', (route) => {
        const url = new URL(route.request().url());
        if (url.hostname === '127.0.0.1' && url.port === String(port)) return route.continue();
        outside.push(url.href);
        return route.abort();
      });
      const page = browser.pages()[0] ?? (await browser.newPage());
      const errors: string[] = [];
      page.on('pageerror', (error) => errors.push(error.message));
      await page.goto(`${httpUrl}/`);

      // Run in the page: written as strings, since this file is type-checked without the DOM.
      const stateOf = (id: string, state: string) =>
        `document.getElementById('${id}')?.dataset.state === '${state}'`;
      const prices = `[...document.querySelectorAll('#prices tbody tr')].map((row) => row.cells[1].textContent)`;
      await page.waitForFunction(stateOf('connection', 'open'));
      await page.waitForFunction(`${prices}.every((price) => price !== '-')`);
      const first = (await page.evaluate(prices)) as string[];
      expect(first).toHaveLength(4);
      await page.waitForFunction(`${prices}.some((price, i) => price !== ${JSON.stringify(first)}[i])`);
      // The depth chart: drawn from a synced book, with pixels in the bid and ask colours.
      await page.waitForFunction(stateOf('book-state', 'synced'));
      await page.waitForFunction(`document.getElementById('depth').dataset.sequence !== ''`);
      const drawn = (await page.evaluate(`(() => {
        const canvas = document.getElementById('depth');
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let green = 0;
        let red = 0;
        for (let i = 0; i < data.length; i += 4) {
          if (data[i + 1] > 150 && data[i] < 100) green++;
          if (data[i] > 200 && data[i + 1] < 120) red++;
        }
        return { green, red };
      })()`)) as { green: number; red: number };
      expect(drawn.green).toBeGreaterThan(100);
      expect(drawn.red).toBeGreaterThan(100);
      await page.waitForFunction(`document.querySelectorAll('#trades tbody tr').length > 0`);
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'live-page.png'), fullPage: true });

      // The gateway restarts on the same port: the page shows it and comes back by itself.
      await stop();
      await page.waitForFunction(stateOf('connection', 'reconnecting'));
      expect(await page.evaluate(`document.getElementById('book-state').textContent`)).toBe(
        'stale: disconnected',
      );
      await page.screenshot({ path: join(ARTIFACTS, 'live-page-reconnecting.png'), fullPage: true });
      gw = await spawnGateway({ SIM_EVENTS_PER_SEC: '50', PORT: String(port) });
      await page.waitForFunction(stateOf('connection', 'open'), undefined, { timeout: 30_000 });
      await page.waitForFunction(stateOf('book-state', 'synced'));
      expect(outside).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
      await stop();
    }
  }, 90_000);
});
