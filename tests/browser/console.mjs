// Drives the operator console in headless Chromium (Debian's /usr/bin/chromium)
// for the e2e test tests/tests/console.rs: sign in with a token, find a
// submission by its id, page through the dead letters with a filter kept, read
// the last hour's charts (their SVG elements and titles, not pixels), switch
// the time zone and the automatic refresh, replay one dead letter, and wait
// until the page shows its receipt as delivered.
//
// Environment: CONSOLE_URL (http://host:port/), CONSOLE_TOKEN, SUBMISSION_ID,
// CANARY (a form value that must never appear on a page), USER_DATA_DIR,
// DESTINATION (where the test sent its 52 refused submissions and 6 delivered
// ones), CONSOLE_SCREENSHOT (optional: write a PNG of the console there).
// Prints one JSON line; exit code 0 on success.
import { chromium } from 'playwright-core';

const {
  CONSOLE_URL, CONSOLE_TOKEN, SUBMISSION_ID, CANARY, USER_DATA_DIR, DESTINATION, CONSOLE_SCREENSHOT,
} = process.env;
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

function fail(message) {
  console.log(JSON.stringify({ ok: false, error: message }));
  process.exit(1);
}

const context = await chromium.launchPersistentContext(USER_DATA_DIR, {
  executablePath: chromiumPath,
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  const noCanary = async (where) => {
    if (CANARY && (await page.content()).includes(CANARY)) fail(`a form value is on the page (${where})`);
  };

  await page.goto(CONSOLE_URL);
  await page.fill('input[name=token]', 'not-a-token');
  await page.click('button:has-text("Sign in")');
  if (!(await page.content()).includes('Unknown token')) fail('a wrong token was not refused');

  await page.fill('input[name=token]', CONSOLE_TOKEN);
  await page.click('button:has-text("Sign in")');
  await page.waitForSelector('table#dead-letters', { timeout: 10000 });
  await noCanary('dead letters');
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'kurier_session');
  if (!session || !session.httpOnly || session.sameSite !== 'Strict') fail('session cookie is not HttpOnly/SameSite=Strict');
  if (session.value.includes(CONSOLE_TOKEN)) fail('the token is in the cookie');

  // Search: the submission's receipt and dead letter, metadata only.
  await page.fill('#search input[name=q]', SUBMISSION_ID);
  await page.click('#search button');
  await page.waitForSelector('#submission');
  const found = await page.textContent('#submission-receipt td.status');
  if (found.trim() !== 'rejected') fail(`the search shows the receipt as ${found}`);
  const reasons = await page.locator('#submission-dead-letters td.reason').allTextContents();
  if (!reasons.includes('authority_rejected')) fail(`the search shows dead letters ${reasons}`);
  await noCanary('search');
  await page.fill('#search input[name=q]', 'not-an-id');
  await page.click('#search button');
  if (!(await page.textContent('#submission')).includes('not a submission id')) fail('a wrong id was not refused');

  // A filter kept across pages: 52 dead letters of the destination refused
  // by the authority, 50 a page; the two unrouted ones are never listed.
  await page.goto(CONSOLE_URL);
  await page.fill('#filters input[name=reason]', 'authority_rejected');
  await page.fill('#filters input[name=destination]', DESTINATION);
  await page.click('#filters button');
  const rows = page.locator('#dead-letters tr[data-submission]');
  const reasonsShown = async () => page.locator('#dead-letters tr[data-submission] td:nth-child(3)').allTextContents();
  if ((await rows.count()) !== 50) fail(`the first page lists ${await rows.count()} dead letters`);
  if ((await reasonsShown()).some((r) => r !== 'authority_rejected')) fail('the first page ignores the filter');
  await page.click('#dead-letters-pages a[rel=next]');
  await page.waitForURL(/dl=50/);
  const second = new URL(page.url());
  if (second.searchParams.get('reason') !== 'authority_rejected' || second.searchParams.get('destination') !== DESTINATION) {
    fail(`the next page lost the filter: ${page.url()}`);
  }
  if ((await rows.count()) !== 2) fail(`the second page lists ${await rows.count()} dead letters`);
  if ((await reasonsShown()).some((r) => r !== 'authority_rejected')) fail('the second page ignores the filter');
  if ((await page.inputValue('#filters input[name=reason]')) !== 'authority_rejected') fail('the filter field is empty on page 2');
  if ((await page.locator('#dead-letters-pages a[rel=next]').count()) !== 0) fail('a next page after the last');
  if ((await page.locator('#dead-letters-pages a[rel=prev]').count()) !== 1) fail('no way back to page 1');

  // Refresh, by hand and every 30 s, keeps the filter and the page.
  await page.click('#auto-refresh');
  await page.waitForURL(/refresh=30/);
  const meta = await page.locator('meta[http-equiv=refresh]').getAttribute('content');
  if (!meta.startsWith('30;url=/?') || !meta.includes('reason=authority_rejected') || !meta.includes('dl=50')) {
    fail(`the refresh loses the filter: ${meta}`);
  }
  await page.click('#auto-refresh');
  if ((await page.locator('meta[http-equiv=refresh]').count()) !== 0) fail('the refresh does not stop');
  const refresh = await page.getAttribute('#refresh', 'href');
  if (!refresh.includes('reason=authority_rejected') || !refresh.includes('dl=50')) fail(`Refresh loses the filter: ${refresh}`);

  // Times in the operator's zone: Berlin by default, UTC when asked; the
  // database's UTC value stays in datetime.
  const firstTime = page.locator('#dead-letters time').first();
  const utc = await firstTime.getAttribute('datetime');
  if (!/Z$/.test(utc) || !/ CES?T$/.test(await firstTime.textContent())) fail(`not Berlin time: ${await firstTime.textContent()}`);
  await page.fill('#zone input[name=tz]', 'UTC');
  await page.click('#zone button');
  await page.waitForURL(/tz=UTC/);
  if (!/ UTC$/.test(await firstTime.textContent())) fail(`not UTC: ${await firstTime.textContent()}`);
  if ((await page.inputValue('#filters input[name=reason]')) !== 'authority_rejected') fail('the zone form lost the filter');
  await page.goto(CONSOLE_URL);
  if (!/ UTC$/.test(await page.locator('#dead-letters time').first().textContent())) fail('the zone is not kept');
  await page.goto(`${CONSOLE_URL}?tz=Europe/Berlin`);

  // The last hour's charts of the destination: twelve buckets per series,
  // every receipt counted, each point titled.
  const chartRow = page.locator(`#last-hour tr[data-destination="${DESTINATION}"]`);
  const points = async (cell, series) => {
    const values = await chartRow.locator(`td.${cell} g[data-series="${series}"] circle`)
      .evaluateAll((cs) => cs.map((c) => Number(c.getAttribute('data-value'))));
    return { count: values.length, sum: values.reduce((a, b) => a + b, 0) };
  };
  const title = await chartRow.locator('td.rate svg > title').textContent();
  if (!title.startsWith(`${DESTINATION}: receipts per 5 min: delivered `)) fail(`rate chart title: ${title}`);
  const failed = await points('rate', 'failed');
  const deliveredBefore = await points('rate', 'delivered');
  if (failed.count !== 12 || failed.sum !== 52) fail(`failed series ${JSON.stringify(failed)}`);
  if (deliveredBefore.count !== 12 || deliveredBefore.sum !== 6) fail(`delivered series ${JSON.stringify(deliveredBefore)}`);
  if ((await points('latency', 'p95')).count < 1) fail('no latency point');
  const pointTitle = await chartRow.locator('td.latency g[data-series="p50"] circle title').first().textContent();
  if (!/^p50 \d\d:\d\d: \d+ ms$/.test(pointTitle)) fail(`latency point title: ${pointTitle}`);
  const parked = await points('backlog', 'parked');
  if (parked.count !== 12 || parked.sum !== 0) fail(`parked series ${JSON.stringify(parked)}`);

  // Replayed from the filtered list: the page after the action keeps it.
  const filtered = `${CONSOLE_URL}?reason=authority_rejected&destination=${DESTINATION}`;
  await page.goto(filtered);
  const row = page.locator(`#dead-letters tr[data-submission="${SUBMISSION_ID}"]`);
  if ((await row.count()) !== 1) fail('the dead letter is not listed');
  await row.locator('button[value=replay]').click();
  await page.waitForSelector('p.msg', { timeout: 10000 });
  const message = await page.textContent('p.msg');
  const after = new URL(page.url());
  if (after.searchParams.get('reason') !== 'authority_rejected' || after.searchParams.get('destination') !== DESTINATION) {
    fail(`the page after the replay lost the filter: ${page.url()}`);
  }

  const status = page.locator(`#receipts tr[data-submission="${SUBMISSION_ID}"] td.status`);
  const deadline = Date.now() + 30000;
  let seen = '';
  while (Date.now() < deadline) {
    await page.goto(CONSOLE_URL);
    seen = (await status.count()) === 1 ? (await status.textContent()).trim() : '(no receipt)';
    if (seen === 'delivered') break;
    await page.waitForTimeout(300);
  }
  if (seen !== 'delivered') fail(`receipt shows ${seen} after replay (${message})`);
  await noCanary('after replay');
  if ((await page.locator(`#dead-letters tr[data-submission="${SUBMISSION_ID}"]`).count()) !== 0) {
    fail('the replayed dead letter is still listed');
  }
  const deliveredAfter = await points('rate', 'delivered');
  if (deliveredAfter.sum !== 7) fail(`the replay is not charted: ${JSON.stringify(deliveredAfter)}`);

  if (CONSOLE_SCREENSHOT) {
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${CONSOLE_URL}?q=${SUBMISSION_ID}`);
    await noCanary('screenshot');
    await page.screenshot({ path: CONSOLE_SCREENSHOT });
  }
  console.log(JSON.stringify({ ok: true, message }));
} catch (e) {
  fail(String(e && e.message ? e.message : e));
} finally {
  await context.close();
}
