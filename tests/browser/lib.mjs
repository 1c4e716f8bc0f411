// What every browser script here shares: the system's Chromium (or
// $CHROMIUM), headless and quiet, and reading an element's text.
import { chromium } from 'playwright-core';

// Headless Chromium with nothing running in the background.
export const launch = () => chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run'],
});

// The trimmed text of the first element matching `sel` on `page`.
export const textOf = (page, sel) => page.textContent(sel).then((t) => (t || '').trim());
