// Drives the console's webhook endpoints pages in headless Chromium for
// tests/test_webhooks_endpoints.py.
//
//   node tests/browser/endpoints.mjs '{"baseUrl": …, "key": …, "receiverUrl": …, "shots": …, "profile": …}'
//
// Creates an endpoint, disables and re-enables it, sends it a test event, then opens its
// deliveries. Prints one JSON object, {texts, pageErrors, foreignRequests}; exit status 1
// and the error when a step failed.
import { join } from "node:path";
import { chromium } from "playwright-core";

const options = JSON.parse(process.argv[2]);
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const result = { texts: {}, pageErrors: [], foreignRequests: [] };

const context = await chromium.launchPersistentContext(options.profile, {
  executablePath: "/usr/bin/chromium", headless: true, args: FLAGS,
  viewport: { width: 1280, height: 900 },
});
context.setDefaultTimeout(30_000);
const page = context.pages()[0] ?? await context.newPage();
page.on("pageerror", (error) => result.pageErrors.push(String(error)));
page.on("request", (request) => {
  const url = request.url();
  if (!url.startsWith(options.baseUrl) && !url.startsWith("data:")) result.foreignRequests.push(url);
});

async function snap(name) {
  await page.screenshot({ path: join(options.shots, `${name}.png`), fullPage: true });
  result.texts[name] = await page.locator("body").innerText();
}

try {
  await page.goto(`${options.baseUrl}/console`);
  await page.fill("#api-key", options.key);
  await page.click('#login-form button[type="submit"]');
  await page.click('#nav a[data-page="endpoints"]');
  await page.fill("#endpoint-url", options.receiverUrl);
  await page.fill("#endpoint-types", "inferhook.prediction.succeeded, inferhook.endpoint.disabled");
  await page.click('#endpoint-form button[type="submit"]');
  await page.locator("#endpoint-secret").filter({ hasText: "whsec_" }).waitFor();
  const row = page.locator("#endpoints tbody tr").first();
  await row.locator(".endpoint-enabled").waitFor();
  await snap("created");
  await row.locator('button[data-action="disable"]').click();
  await row.locator(".endpoint-disabled").waitFor();
  await snap("disabled");
  await row.locator('button[data-action="enable"]').click();
  await row.locator(".endpoint-enabled").waitFor();
  await row.locator('button[data-action="test"]').click();
  await page.locator("#endpoint-secret").filter({ hasText: "Test event" }).waitFor();
  await row.locator("a").click();
  await page.locator("#deliveries .delivery-delivered").waitFor();
  await snap("deliveries");
} catch (error) {
  result.error = String(error);
  result.texts.failure = await page.locator("body").innerText().catch(() => "");
}
await context.close();
console.log(JSON.stringify(result));
process.exit(result.error ? 1 : 0);
