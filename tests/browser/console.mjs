// Drives the operator console in headless Chromium (Debian's /usr/bin/chromium)
// for the e2e test tests/tests/console.rs: sign in with a token, replay one
// dead letter, and wait until the page shows its receipt as delivered.
//
// Environment: CONSOLE_URL (http://host:port/), CONSOLE_TOKEN, SUBMISSION_ID,
// CANARY (a form value that must never appear on a page), USER_DATA_DIR.
// Prints one JSON line; exit code 0 on success.
import { chromium } from 'playwright-core';

const { CONSOLE_URL, CONSOLE_TOKEN, SUBMISSION_ID, CANARY, USER_DATA_DIR } = process.env;
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

  const row = page.locator(`#dead-letters tr[data-submission="${SUBMISSION_ID}"]`);
  if ((await row.count()) !== 1) fail('the dead letter is not listed');
  await row.locator('button[value=replay]').click();
  await page.waitForSelector('p.msg', { timeout: 10000 });
  const message = await page.textContent('p.msg');

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
  console.log(JSON.stringify({ ok: true, message }));
} catch (e) {
  fail(String(e && e.message ? e.message : e));
} finally {
  await context.close();
}
