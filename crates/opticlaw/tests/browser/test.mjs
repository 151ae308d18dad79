// Drives OptiClaw's web chat in headless Chromium (Debian's /usr/bin/chromium)
// as a person would: type, send, see the reply, get a reminder.
//   node test.mjs URL [SCREENSHOT_PREFIX]
// URL is the link `opticlaw serve` prints (…/chat#token=…). Exits 0 when
// every check passes; writes SCREENSHOT_PREFIX-light.png and -dark.png.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, prefix = join(tmpdir(), `opticlaw-webchat-${process.pid}`)] = process.argv.slice(2);
if (!url) {
  console.error('usage: node test.mjs URL [SCREENSHOT_PREFIX]');
  process.exit(2);
}
const step = (text) => console.log(`- ${text}`);
const check = (ok, text) => {
  if (!ok) throw new Error(`check failed: ${text}`);
};

const profile = mkdtempSync(join(tmpdir(), 'opticlaw-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width: 900, height: 700 },
    timeout: 60_000,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(20_000);
  const problems = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
  });
  const offsite = [];
  page.on('request', (req) => {
    if (!req.url().startsWith(new URL(url).origin) && !req.url().startsWith('data:')) offsite.push(req.url());
  });

  step('open the page and wait until it is connected');
  await page.goto(url);
  await page.locator('#state[data-state="online"]').waitFor();
  check(!page.url().includes('token='), `the token is left in the address bar: ${page.url()}`);
  check(await page.locator('#tokenform').isHidden(), 'the token form shows although the link has a token');

  const input = page.getByLabel('Message');
  const replies = page.locator('#log .msg.reply');
  const send = async (text) => {
    await input.click();
    await page.keyboard.type(text);
    await page.keyboard.press('Enter');
  };

  step('Shift+Enter adds a line, Enter sends');
  await input.click();
  await page.keyboard.type('first line');
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.type('second');
  check((await input.inputValue()) === 'first line\nsecond', 'Shift+Enter did not insert a newline');
  check((await page.locator('#log .msg.user').count()) === 0, 'Shift+Enter sent the message');
  await input.fill('');

  step('type /help, send with Enter, see the reply');
  await send('/help');
  check((await input.inputValue()) === '', 'the input was not cleared after sending');
  const mine = page.locator('#log .msg.user', { hasText: '/help' });
  await mine.waitFor();
  await replies.filter({ hasText: 'remind me' }).first().waitFor();
  await page.locator('#log .msg.user .meta', { hasText: 'sent' }).first().waitFor();
  const userBox = await mine.boundingBox();
  const replyBox = await replies.first().boundingBox();
  check(userBox.x + userBox.width > replyBox.x + replyBox.width + 50, 'user bubble is not on the right');
  check(replyBox.x < userBox.x, 'assistant bubble is not on the left');

  step('ask for a reminder in 2 seconds and see it arrive');
  await send('remind me in 2 seconds to stretch');
  await page.locator('#log .msg.user', { hasText: 'stretch' }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll('#log .msg.reply').length >= 2);
  const reminder = page.locator('#log .msg.reminder', { hasText: 'stretch' });
  await reminder.waitFor({ timeout: 30_000 });
  check((await reminder.locator('.label').innerText()).includes('Reminder'), 'the reminder is not labelled');
  const reminderBg = await reminder.evaluate((el) => getComputedStyle(el).backgroundColor);
  const replyBg = await replies.first().evaluate((el) => getComputedStyle(el).backgroundColor);
  check(reminderBg !== replyBg, 'the reminder is not highlighted');
  await page.waitForFunction(() => document.getElementById('announcer').textContent.includes('stretch'));

  step('reload: the token survives in the tab and the conversation comes back');
  await page.reload();
  await page.locator('#state[data-state="online"]').waitFor();
  await page.locator('#log .msg.reminder', { hasText: 'stretch' }).waitFor();
  await page.locator('#log .msg.user', { hasText: '/help' }).waitFor();
  const kinds = await page.locator('#log .msg').evaluateAll((els) => els.map((e) => e.dataset.kind));
  check(kinds.join(',') === 'user,reply,user,reply,reminder', `conversation after reload: ${kinds}`);

  step('screenshots');
  await page.screenshot({ path: `${prefix}-light.png` });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: `${prefix}-dark.png` });
  console.log(`screenshots: ${prefix}-light.png ${prefix}-dark.png`);

  step('a wrong token is refused and the page asks for the right one');
  const other = await context.newPage();
  const good = new URLSearchParams(new URL(url).hash.slice(1)).get('token');
  const wrong = new URL(url);
  wrong.hash = 'token=not-the-token';
  await other.goto(wrong.href);
  await other.locator('#state[data-state="error"]').waitFor();
  await other.getByLabel('API token').fill(good);
  await other.getByRole('button', { name: 'Connect' }).click();
  await other.locator('#state[data-state="online"]').waitFor();
  check(await other.locator('#tokenform').isHidden(), 'the token form stays after connecting');
  await other.close();

  check(problems.length === 0, problems.join('; '));
  check(offsite.length === 0, `requests to other origins: ${offsite.join(', ')}`);
  console.log('webchat browser test: ok');
} catch (err) {
  console.error(`webchat browser test FAILED: ${err.stack || err}`);
  process.exitCode = 1;
} finally {
  await context?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
