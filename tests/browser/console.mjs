// Drives the console in headless Chromium for tests/test_console.py.
//
//   node tests/browser/console.mjs '{"baseUrl": …, "key": …, "predictionId": …, "uploadPng": …,
//                                    "shots": …, "profile": …}'
//
// Each step waits for what the page must show (a timeout fails the run), takes a screenshot
// and keeps the page's visible text. It prints one JSON object, {texts, ids, screenshots,
// pageErrors, foreignRequests}, for the Python test to check; exit status 1 and the error when
// a step failed.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const options = JSON.parse(process.argv[2]);
const STEP_MS = 30_000;
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

const result = { texts: {}, ids: {}, screenshots: [], pageErrors: [], foreignRequests: [] };

const context = await chromium.launchPersistentContext(options.profile, {
  executablePath: "/usr/bin/chromium", headless: true, args: FLAGS,
  viewport: { width: 1280, height: 900 },
});
context.setDefaultTimeout(STEP_MS);
const page = context.pages()[0] ?? await context.newPage();
page.on("pageerror", (error) => result.pageErrors.push(String(error)));
page.on("request", (request) => {
  const url = request.url();
  if (!url.startsWith(options.baseUrl) && !url.startsWith("data:")) result.foreignRequests.push(url);
});

async function snap(name) {
  const path = join(options.shots, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  result.screenshots.push(path);
  result.texts[name] = await page.locator("body").innerText();
}

async function waitSucceeded() {
  await page.waitForURL(/#\/predictions\/[0-9a-f-]{36}$/);
  await page.locator('#summary [data-status="succeeded"]').waitFor();
  await page.locator('#timeline [data-status="succeeded"]').waitFor();
  await page.waitForFunction(() => document.querySelector("#live")?.textContent === "");
  return decodeURIComponent(new URL(page.url()).hash.split("/")[2]);
}

try {
  // Sign in.
  await page.goto(`${options.baseUrl}/console`);
  await page.locator("#login").waitFor();
  await snap("login");
  await page.fill("#api-key", "ih_not-a-key");
  await page.click('#login-form button[type="submit"]');
  await page.locator("#login-error").filter({ hasText: "did not accept" }).waitFor();
  await snap("refused");
  await page.fill("#api-key", options.key);
  await page.click('#login-form button[type="submit"]');

  // The list shows the prediction the test made, succeeded.
  const row = page.locator(`#predictions tr[data-id="${options.predictionId}"]`);
  await row.locator('[data-status="succeeded"]').waitFor();
  await page.locator("#who").filter({ hasText: "alice" }).waitFor();
  await page.locator("#queues li").first().waitFor();
  await snap("list");

  // A prediction made elsewhere shows up without reloading the page.
  const made = await fetch(`${options.baseUrl}/v1/predictions`, {
    method: "POST",
    headers: { Authorization: `Bearer ${options.key}`, "Content-Type": "application/json" },
    body: JSON.stringify({ model: "inferhook/spin", input: { milliseconds: 5 } }),
  });
  if (made.status !== 201) throw new Error(`create answered ${made.status}`);
  result.ids.polled = (await made.json()).id;
  await page.locator(`#predictions tr[data-id="${result.ids.polled}"] [data-status="succeeded"]`).waitFor();
  await snap("list-live");

  // Its page: the timeline, and the webhook delivered.
  await row.locator("a").click();
  await page.locator('#timeline [data-status="succeeded"]').waitFor();
  const completed = page.locator("#deliveries tbody tr").last();
  await completed.locator(".delivery-delivered").waitFor();
  await snap("detail");

  // Redeliver: the latest delivery gets a second attempt.
  await page.click("#redeliver");
  await page.locator("#redeliver-status").filter({ hasText: "Redelivery queued." }).waitFor();
  await page.waitForFunction(() =>
    document.querySelectorAll("#deliveries tbody tr:last-child .attempts-log li").length >= 2);
  await snap("redelivered");

  // Models: try inferhook/digits with its example input.
  await page.click('#nav a[data-page="models"]');
  const digits = page.locator('form.try[data-model="inferhook/digits"]');
  await digits.locator(".chosen").filter({ hasText: "Example input" }).waitFor();
  await page.locator('article[data-model="inferhook/digits"] .queue').filter({ hasText: "pending" }).waitFor();
  await snap("models");
  await digits.locator('button[type="submit"]').click();
  result.ids.example = await waitSucceeded();
  await snap("example");

  // The same form with a file chosen: the browser turns it into a data: URI.
  await page.click('#nav a[data-page="models"]');
  await digits.locator('input[type="file"]').setInputFiles({
    name: "digit.png", mimeType: "image/png", buffer: readFileSync(options.uploadPng),
  });
  await digits.locator(".chosen").filter({ hasText: "digit.png" }).waitFor();
  await digits.locator('button[type="submit"]').click();
  result.ids.upload = await waitSucceeded();
  await snap("upload");

  // A slower prediction: its page follows the event stream until it is done.
  await page.click('#nav a[data-page="models"]');
  const spin = page.locator('form.try[data-model="inferhook/spin"]');
  await spin.locator('input[name="milliseconds"]').fill("1500");
  await spin.locator('button[type="submit"]').click();
  await page.locator("#live").filter({ hasText: "Following the event stream" }).waitFor();
  await snap("following");
  result.ids.streamed = await waitSucceeded();
  result.texts.streamedEvents = (await page.locator('#timeline li[data-source="stream"]').allInnerTexts()).join("\n");
  await snap("streamed");

  // Back on the list, newest first.
  await page.click('#nav a[data-page="predictions"]');
  await page.locator(`#predictions tr[data-id="${result.ids.streamed}"] [data-status="succeeded"]`).waitFor();
  result.ids.listed = await page.locator("#predictions tbody tr").evaluateAll(
    (rows) => rows.map((r) => r.dataset.id));
  await snap("list-after");

  // Sign out: the key is gone from the tab.
  await page.click("#sign-out");
  await page.locator("#login").waitFor();
  result.texts.storedKey = String(await page.evaluate(() => sessionStorage.length));
} catch (error) {
  result.error = String(error.stack ?? error);
  await page.screenshot({ path: join(options.shots, "failure.png"), fullPage: true }).catch(() => {});
  result.texts.failure = await page.locator("body").innerText().catch(() => "");
} finally {
  await context.close();
}
console.log(JSON.stringify(result));
process.exit(result.error ? 1 : 0);
