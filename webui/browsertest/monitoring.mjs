// Drives gatewayq's monitoring UI (asynqmon under /monitoring) in headless
// Chromium, as an operator would: it is refused without credentials, logs
// in with HTTP Basic, finds the queue on the dashboard, opens the queue's
// archived tasks, sees the failed job and its error, checks that the
// read-only UI refuses a change, and saves a screenshot.
//
// Run by webui's TestMonitoringInBrowser, which starts Redis, the sandbox
// and a worker, and passes everything in the environment:
//   GQ_BASE_URL    http://127.0.0.1:port/monitoring
//   GQ_USER, GQ_PASSWORD
//   GQ_QUEUE       the queue holding the failed job
//   GQ_ERROR       text of the failed job's last error
//   GQ_SCREENSHOT  where to write the PNG
//   GQ_CHROMIUM    the Chromium executable (Debian's /usr/bin/chromium)
// It prints one line per step passed and exits non-zero on the first
// failure.
import { chromium } from "playwright-core";

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

const base = need("GQ_BASE_URL").replace(/\/$/, "");
const user = need("GQ_USER");
const password = need("GQ_PASSWORD");
const queue = need("GQ_QUEUE");
const errorText = need("GQ_ERROR");
const screenshot = need("GQ_SCREENSHOT");
const executablePath = need("GQ_CHROMIUM");
const origin = new URL(base).origin;

function check(ok, what) {
  if (!ok) throw new Error(what);
  console.log(`ok: ${what}`);
}

// Only the UI's own origin is reachable: asynqmon's page links Google
// Fonts, which a test must not fetch (nor wait for).
async function offline(context) {
  await context.route("**/*", (route) =>
    new URL(route.request().url()).origin === origin ? route.continue() : route.abort(),
  );
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // A fresh profile each launch is Playwright's doing; these keep Chromium
  // from phoning home, and --no-sandbox lets it run as root in CI.
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  timeout: 60_000,
});
try {
  // Without credentials: a login challenge, and no page. A headless
  // browser with nothing to answer the challenge with fails the
  // navigation; the answer itself is read with the context's own client.
  const anon = await browser.newContext();
  await offline(anon);
  const anonPage = await anon.newPage();
  const navigation = await anonPage.goto(`${base}/`).then(
    (r) => `status ${r.status()}`,
    (e) => e.message,
  );
  check(/ERR_INVALID_AUTH_CREDENTIALS/.test(navigation), `without credentials the browser gets no page (${navigation.split("\n")[0]})`);
  const refused = await anon.request.get(`${base}/`);
  check(refused.status() === 401, `without credentials ${base}/ answers 401 (got ${refused.status()})`);
  check(/^Basic realm=/.test(refused.headers()["www-authenticate"] ?? ""), "the 401 carries a Basic challenge");
  check(!(await refused.text()).includes("Asynq"), "the 401 shows nothing of the UI");
  await anon.close();

  // Logged in.
  const context = await browser.newContext({
    httpCredentials: { username: user, password },
    viewport: { width: 1400, height: 900 },
  });
  await offline(context);
  context.setDefaultTimeout(30_000);
  const page = await context.newPage();
  const home = await page.goto(`${base}/`);
  check(home.status() === 200, `logged in, ${base}/ answers 200 (got ${home.status()})`);

  const queueLink = page.getByRole("link", { name: queue, exact: true });
  await queueLink.waitFor({ state: "visible" });
  check(true, `the dashboard lists queue ${queue}`);

  await queueLink.click();
  const archived = page.getByRole("button", { name: /^Archived\s+\d+$/ });
  await archived.waitFor({ state: "visible" });
  const label = (await archived.innerText()).replace(/\s+/g, " ").trim();
  check(label !== "Archived 0", `the queue page counts archived jobs ("${label}")`);
  await archived.click();
  await page.waitForURL(/[?&]status=archived\b/);

  const failure = page.getByRole("cell", { name: errorText, exact: true });
  await failure.waitFor({ state: "visible" });
  check(true, `the archived tab shows the failed job with its error "${errorText}"`);

  // Read-only: the UI offers no action buttons, and the server refuses a
  // change even when asked directly from the logged-in page.
  check((await page.getByRole("button", { name: /delete|run all|archive all/i }).count()) === 0, "no delete, run or archive buttons");
  const status = await page.evaluate(
    async (url) => (await fetch(url, { method: "POST" })).status,
    `${base}/api/queues/${encodeURIComponent(queue)}:pause`,
  );
  check(status === 405, `pausing the queue from the page is refused with 405 (got ${status})`);

  // The screenshot shows the page, not the focus ring of the last click.
  await page.evaluate(() => document.activeElement?.blur());
  await page.mouse.move(0, 0);
  await page.screenshot({ path: screenshot });
  console.log(`screenshot: ${screenshot}`);
  await context.close();
} finally {
  await browser.close();
}
