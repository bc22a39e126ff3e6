/**
 * Headless Chromium driven by playwright-core. The browser itself comes from
 * npm (`@sparticuz/chromium` ships a Chromium inside the package), so the
 * browser tests run on any machine with Node and npm; CHROMIUM_PATH overrides.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import packagedChromium from '@sparticuz/chromium';
import { chromium, type Browser } from 'playwright-core';

export const ARTIFACTS = join(import.meta.dir, '..', '..', 'test-artifacts');

// The package's own flag list is made for serverless hosts and turns web security off
// (no CORS, no mixed-content blocking): the tests need a browser that behaves like a user's.
const ARGS = [
  '--headless=shell',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--no-default-browser-check',
  // No background networking: this machine's network is closed and Chromium would keep retrying.
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-gl=angle',
  '--use-angle=swiftshader',
];

/** Launches Chromium (the npm-packaged one unless CHROMIUM_PATH names another). */
export async function launchBrowser(): Promise<Browser> {
  const executablePath = process.env.CHROMIUM_PATH ?? (await packagedChromium.executablePath());
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({ executablePath, headless: true, args: ARGS });
}
