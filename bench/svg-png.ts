// An SVG made by a bench script, rendered to PNG by Debian's Chromium through playwright-core (no
// chart library): the charts under bench/results/.
const CHROMIUM = '/usr/bin/chromium';

export async function renderSvgPng(svg: string, pngFile: string): Promise<void> {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  try {
    const page = await browser.newPage({ deviceScaleFactor: 2 });
    await page.setContent(
      `<!doctype html><html><body style="margin:0;background:#fff">${svg}</body></html>`,
    );
    await page.locator('svg').screenshot({ path: pngFile });
  } finally {
    await browser.close();
  }
}
