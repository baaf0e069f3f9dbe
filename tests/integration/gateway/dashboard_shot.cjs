// Drive the gateway's dashboard in headless Debian chromium (playwright-core) and screenshot it.
// Usage: node dashboard_shot.cjs URL OUT.png USER_DATA_DIR  → prints a JSON summary on stdout.
"use strict";
const path = require("path");
const { chromium } = require(path.join(__dirname, "..", "..", "..", "node_modules", "playwright-core"));

const [url, out, userDataDir] = process.argv.slice(2);
const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run",
];

(async () => {
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: FLAGS,
    viewport: { width: 1280, height: 1000 },
  });
  const errors = [];
  try {
    const page = await context.newPage();
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    await page.goto(url, { waitUntil: "domcontentloaded", timeout: 60000 });
    await page.waitForSelector("body[data-loaded=true]", { timeout: 60000 });
    await page.waitForTimeout(500);
    const rows = (sel) => page.$$eval(`${sel} tbody tr`, (trs) => trs.map((tr) => tr.innerText));
    const summary = {
      chain: await page.textContent("#chain"),
      live: await page.textContent("#live"),
      models: await rows("#models"),
      jobs: await rows("#jobs"),
      nodes: await rows("#nodes"),
      lineage: await page.$$eval("#lineage li", (lis) => lis.map((li) => li.innerText)),
      errors,
    };
    await page.screenshot({ path: out, fullPage: true });
    process.stdout.write(JSON.stringify(summary));
  } finally {
    await context.close();
  }
})().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error));
  process.exit(1);
});
