// End-to-end tests of the web page in headless Chromium, against a real `switchboard serve`
// on a free port with the scripted model service (model.mjs). Run by the Rust test
// `web::the_web_page_works_in_a_real_browser`, which passes:
//   SWITCHBOARD_BIN       the built binary
//   SWITCHBOARD_TEST_WEB  a directory whose node_modules has playwright-core, typescript, openapi-typescript
//   SWITCHBOARD_TEST_MCP_SERVERS  where @modelcontextprotocol/server-everything is installed
//   SCREENSHOTS           where to save the screenshots of the main screens
// SWITCHBOARD_UPDATE_WEB_TYPES=1 rewrites crates/api/web/api.d.ts from the server's /openapi.json.
import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startModel } from './model.mjs';
import { startIdp, CLIENT_ID, CLIENT_SECRET } from './idp.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const webDir = path.resolve(here, '../../../api/web');
const modules = path.join(process.env.SWITCHBOARD_TEST_WEB ?? '', 'node_modules');
const require = createRequire(path.join(modules, 'index.js'));
const { chromium } = require('playwright-core');
const bin = process.env.SWITCHBOARD_BIN;
const shots = process.env.SCREENSHOTS ?? path.join(os.tmpdir(), 'switchboard-web-screenshots');
fs.mkdirSync(shots, { recursive: true });

let failures = 0;
/** Runs one named step; a failure is reported and the run goes on to the end. */
async function step(name, body) {
  const started = Date.now();
  try {
    await body();
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    failures += 1;
    console.log(`FAIL ${name}: ${error?.stack ?? error}`);
  }
}
function check(condition, message) {
  if (!condition) throw new Error(message);
}

// ------------------------------------------------------------------ the server

const data = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-web-'));
const everything = path.join(process.env.SWITCHBOARD_TEST_MCP_SERVERS ?? '', 'node_modules/.bin/mcp-server-everything');
const catalog = path.join(data, 'extra-catalog.json');
fs.writeFileSync(catalog, JSON.stringify([{
  name: 'Everything Test',
  description: 'The MCP reference server: echo messages, add numbers, long operations',
  launch: { transport: 'stdio', command: everything, args: ['stdio'], env: { EVERYTHING_TOKEN: '${EVERYTHING_TOKEN}' } },
  credentials: [{
    key: 'EVERYTHING_TOKEN', description: 'A token for the reference server', required: true, secret: true,
    instructions: ['Open the reference server settings', 'Create a token and copy it'], link: 'https://example.org/tokens',
  }],
}]));
const model = await startModel();
const idp = await startIdp();
// An account connected with OAuth, at the same local provider (its scopes include openid, which
// it requires).
fs.writeFileSync(path.join(data, 'connect-catalog.json'), JSON.stringify([{
  name: 'Idp Notes',
  description: 'Notes kept at the test identity provider',
  launch: { transport: 'stdio', command: everything, args: ['stdio'], env: { NOTES_TOKEN: '${NOTES_TOKEN}' } },
  credentials: [{ key: 'NOTES_TOKEN', description: 'An access token for the notes', secret: true }],
  oauth: { client: 'web', issuer: idp.issuer, scopes: [{ name: 'openid', description: 'Know who you are', required: true }],
    access_token_key: 'NOTES_TOKEN' },
}]));
const env = { ...process.env, SWITCHBOARD_LLM_PROVIDER: 'openai', SWITCHBOARD_LLM_BASE_URL: model.baseUrl,
  SWITCHBOARD_OIDC: `[{issuer="${idp.issuer}", audiences=["${CLIENT_ID}"], client_id="${CLIENT_ID}", client_secret="${CLIENT_SECRET}", name="Test IdP"}]`,
  SWITCHBOARD_LLM_API_KEY: 'sk-scripted', SWITCHBOARD_LLM_MAX_RETRIES: '0', SWITCHBOARD_LOG_LEVEL: 'warn',
  SWITCHBOARD_RATE_LIMIT_PER_MINUTE: '1000',
  SWITCHBOARD_OAUTH_CLIENTS: `[{name="web", client_id="${CLIENT_ID}", client_secret="${CLIENT_SECRET}"}]`,
  SWITCHBOARD_OUTBOUND_ALLOW: '127.0.0.0/8', SWITCHBOARD_OUTBOUND_ALLOW_HTTP: 'true' };
for (const key of ['SWITCHBOARD_DATABASE_URL', 'SWITCHBOARD_REDIS_URL', 'SWITCHBOARD_CONFIG']) delete env[key];
execFileSync(bin, ['catalog', 'import', '--data-dir', data, catalog, path.join(data, 'connect-catalog.json')],
  { env, stdio: ['ignore', 'ignore', 'inherit'] });
/** Starts `switchboard serve` on a free port; resolves to the process and its printed sign-in link. */
function serve(dataDir, serverEnv) {
  const child = spawn(bin, ['serve', '--addr', '127.0.0.1:0', '--data-dir', dataDir], { env: serverEnv, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      const found = /^Web page, signed in as the local user: (\S+)$/.exec(line);
      if (found) resolve({ child, link: found[1] });
    });
    child.on('exit', (code) => reject(new Error(`switchboard serve exited with ${code} before printing its sign-in link`)));
    setTimeout(() => reject(new Error('no sign-in link within 60 s')), 60_000);
  });
}
const { child: server, link: signInLink } = await serve(data, env);
const base = signInLink.slice(0, signInLink.indexOf('/#token='));
const token = signInLink.slice(signInLink.indexOf('#token=') + 7);

// ------------------------------------------------------------------ types against /openapi.json

await step('the typed client matches /openapi.json and the page type-checks against it', async () => {
  const spec = path.join(data, 'openapi.json');
  fs.writeFileSync(spec, await (await fetch(`${base}/openapi.json`)).text());
  const generated = path.join(data, 'api.d.ts');
  execFileSync(path.join(modules, '.bin/openapi-typescript'), [spec, '-o', generated], { stdio: 'pipe' });
  const checkedIn = path.join(webDir, 'api.d.ts');
  if (process.env.SWITCHBOARD_UPDATE_WEB_TYPES === '1') fs.copyFileSync(generated, checkedIn);
  check(fs.existsSync(checkedIn) && fs.readFileSync(checkedIn, 'utf8') === fs.readFileSync(generated, 'utf8'),
    'crates/api/web/api.d.ts is not what /openapi.json generates; rerun with SWITCHBOARD_UPDATE_WEB_TYPES=1');
  try {
    execFileSync(path.join(modules, '.bin/tsc'), ['-p', path.join(webDir, 'tsconfig.json')], { stdio: 'pipe' });
  } catch (error) {
    throw new Error(`tsc found type errors:\n${error.stdout}`);
  }
});

// ------------------------------------------------------------------ the browser

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
const page = await context.newPage();
const consoleErrors = [];
page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
page.on('pageerror', (e) => consoleErrors.push(String(e)));
page.on('dialog', (d) => d.accept(d.type() === 'prompt' ? 'Renamed in the browser' : undefined));

await step('a wrong token is refused with a readable message', async () => {
  await page.goto(`${base}/`);
  await page.locator('#signin-token').fill('not-a-token');
  await page.locator('#signin-form button').click();
  await page.locator('#signin-error', { hasText: 'not accepted' }).waitFor();
});

await step('the sign-in link signs in and clears the token from the address bar', async () => {
  consoleErrors.length = 0; // the refused token above was reported as a failed request
  await page.goto(signInLink);
  await page.locator('#me', { hasText: 'Local user' }).waitFor();
  check(!page.url().includes('token'), `the address still holds the token: ${page.url()}`);
  check(await page.evaluate(() => localStorage.getItem('switchboard.token')) === token, 'the token was not kept');
});

await step('a chat message streams its reply with a tool card, and the tasks panel shows the new task', async () => {
  await page.locator('#composer-input').fill('add a task called Buy oat milk');
  await page.locator('#composer-input').press('Enter'); // the keyboard sends
  const card = page.locator('.message.assistant .tool-card').first();
  await card.locator('.tool-name', { hasText: 'add_task' }).waitFor();
  await page.locator('.message.assistant .body', { hasText: 'Done: the tool answered.' }).waitFor();
  await card.locator('summary').click();
  await card.locator('pre', { hasText: '"title": "Buy oat milk"' }).first().waitFor();
  check(!(await card.evaluate((el) => el.classList.contains('error'))), 'a successful call is not shown as an error');
  await page.locator('#task-list .task', { hasText: 'Buy oat milk' }).waitFor();
  await page.locator('#conversation-list .conversation').first().waitFor();
  await page.screenshot({ path: path.join(shots, 'chat.png'), fullPage: true });
});

await step('a conversation can be renamed, reopened with its tool cards, and a new one started', async () => {
  await page.locator('#rename-conversation').click();
  await page.locator('#conversation-list .conversation', { hasText: 'Renamed in the browser' }).waitFor();
  await page.locator('#new-conversation').click();
  check(await page.locator('#messages .message').count() === 0, 'a new conversation starts empty');
  await page.locator('#conversation-list .conversation', { hasText: 'Renamed in the browser' }).click();
  await page.locator('#messages .tool-card .tool-name', { hasText: 'add_task' }).waitFor();
});

await step('a described workflow asks for exactly its credentials, then shows the agent card', async () => {
  await page.locator('#new-conversation').click();
  await page.locator('#composer-input').fill('Set up a workflow that echoes my messages with the everything test server');
  await page.locator('#send').click();
  const form = page.locator('.credentials-form');
  await form.waitFor();
  check(await form.locator('input').count() === 1, 'one field for the one missing credential');
  const field = form.locator('input[name=EVERYTHING_TOKEN]');
  check(await field.getAttribute('type') === 'password', 'a secret field is masked');
  await form.locator('.steps li', { hasText: 'Create a token and copy it' }).waitFor();
  await form.locator('.hint', { hasText: 'A token for the reference server' }).waitFor();
  await page.screenshot({ path: path.join(shots, 'credentials-form.png'), fullPage: true });
  await field.fill('everything-secret-value');
  await form.locator('button[type=submit]').click();
  const card = page.locator('.agent-card');
  await card.waitFor();
  await card.locator('h3', { hasText: 'Echo helper' }).waitFor();
  await card.getByText('Everything Test').first().waitFor();
  await card.locator('.steps li', { hasText: 'Echo it back with the server' }).waitFor();
  check(!(await page.content()).includes('everything-secret-value'), 'the secret is not on the page');
  await card.getByRole('button', { name: 'Copy Claude Desktop' }).click();
  await card.locator('pre.config', { hasText: 'mcpServers' }).waitFor();
  const download = page.waitForEvent('download');
  await card.getByRole('button', { name: 'Download VS Code' }).click();
  check((await download).suggestedFilename() === 'mcp.json', 'VS Code configuration downloads as mcp.json');
  await page.screenshot({ path: path.join(shots, 'agent-card.png'), fullPage: true });
});

await step('running the agent as a job shows its progress until it completes, with token usage', async () => {
  const card = page.locator('.agent-card');
  await card.locator('input').fill('Say hello');
  await card.getByRole('button', { name: 'Run as a job' }).click();
  await page.locator('#view-jobs.active').waitFor();
  const job = page.locator('#job-list .job').first();
  await page.locator('#job-list .job.completed').first().waitFor({ timeout: 60_000 });
  await page.locator('#job-list .job.completed .job-result', { hasText: 'Hello from the scripted model.' }).first().waitFor();
  await page.locator('#job-list .job.completed small', { hasText: 'tokens' }).first().waitFor();
  check(await job.count() === 1, 'one job listed');
  await page.screenshot({ path: path.join(shots, 'jobs.png'), fullPage: true });
});

await step('a task is completed, edited and deleted from the panel', async () => {
  await page.locator('nav [data-view=tasks]').click();
  const row = page.locator('#task-list .task', { hasText: 'Buy oat milk' });
  await row.locator('input[type=checkbox]').check();
  await page.locator('#task-list .task.done', { hasText: 'Buy oat milk' }).waitFor();
  await page.locator('#task-title').fill('Water the plants');
  await page.locator('#task-form button').click();
  const added = page.locator('#task-list .task', { hasText: 'Water the plants' });
  await added.getByRole('button', { name: /Edit task/ }).click();
  const field = page.locator('#task-list .task input[aria-label^="New title"]');
  await field.fill('Water the garden');
  await field.press('Enter');
  await page.locator('#task-list .task', { hasText: 'Water the garden' }).waitFor();
  const api = await (await fetch(`${base}/api/v1/tasks`, { headers: { Authorization: `Bearer ${token}` } })).json();
  check(api.items.some((t) => t.title === 'Buy oat milk' && t.status === 'completed'), 'the completion reached the server');
  check(api.items.some((t) => t.title === 'Water the garden'), 'the edit reached the server');
  await page.locator('#task-list .task', { hasText: 'Water the garden' }).getByRole('button', { name: /Delete task/ }).click();
  await page.locator('#task-list .task', { hasText: 'Water the garden' }).waitFor({ state: 'detached' });
  await page.screenshot({ path: path.join(shots, 'tasks.png'), fullPage: true });
});

await step('the catalog searches as you type, shows scores, tools and credentials, and removes a credential', async () => {
  await page.locator('nav [data-view=catalog]').click();
  await page.locator('#catalog-search').pressSequentially('echo messages everything', { delay: 20 });
  const first = page.locator('#server-list .server', { has: page.locator('strong', { hasText: /^Everything Test$/ }) });
  await first.waitFor();
  check(/\d\.\d{3}/.test(await first.locator('.score').innerText()), 'a score is shown');
  await first.locator('summary').click();
  await first.locator('code', { hasText: 'EVERYTHING_TOKEN' }).waitFor();
  const stored = page.locator('#credential-list .credential', { hasText: 'Everything Test' });
  await stored.getByText('EVERYTHING_TOKEN: set').waitFor();
  check(!(await page.content()).includes('everything-secret-value'), 'a stored value is never shown');
  await page.screenshot({ path: path.join(shots, 'catalog.png'), fullPage: true });
  await stored.getByRole('button', { name: /Remove/ }).click();
  await stored.waitFor({ state: 'detached' });
});

await step('an account is connected from the catalog with OAuth, listed, then disconnected', async () => {
  await page.locator('#catalog-search').fill('');
  await page.locator('#catalog-search').pressSequentially('notes at the test identity provider', { delay: 10 });
  const entry = page.locator('#server-list .server', { has: page.locator('strong', { hasText: /^Idp Notes$/ }) });
  await entry.waitFor();
  await entry.locator('summary').click();
  const popup = page.waitForEvent('popup');
  await entry.getByRole('button', { name: 'Connect your account' }).click();
  const provider = await popup;
  await provider.locator('#outcome', { hasText: 'Idp Notes is connected' }).waitFor();
  check(new URL(provider.url()).pathname === '/api/v1/oauth/callback', `the provider sent the person back: ${provider.url()}`);
  await provider.screenshot({ path: path.join(shots, 'connected.png') });
  await provider.close();
  // Coming back to the page shows the connection.
  await page.evaluate(() => window.dispatchEvent(new Event('focus')));
  const listed = page.locator('#credential-list .connection', { hasText: 'Idp Notes' });
  await listed.getByText('account connected').waitFor();
  check(!(await page.content()).includes(CLIENT_SECRET), 'the client secret never reaches the page');
  await listed.getByRole('button', { name: 'Disconnect Idp Notes' }).click();
  await listed.waitFor({ state: 'detached' });
});

await step('a failed tool call shows as a red card with its error', async () => {
  await page.locator('nav [data-view=chat]').click();
  await page.locator('#new-conversation').click();
  await page.locator('#composer-input').fill('complete task 99');
  await page.locator('#send').click();
  const card = page.locator('.message.assistant .tool-card.error');
  await card.locator('.tool-name', { hasText: 'complete_task' }).waitFor();
  await card.locator('summary').click();
  await card.locator('h4', { hasText: 'Error' }).waitFor();
  const color = await card.locator('.tool-status').evaluate((el) => getComputedStyle(el).color);
  check(color === 'rgb(179, 38, 30)', `the failed call's status is red, not ${color}`);
  await page.locator('.message.assistant .body', { hasText: 'That task does not exist.' }).waitFor();
  await page.screenshot({ path: path.join(shots, 'tool-error.png'), fullPage: true });
});

await step('a conversation is deleted with its messages', async () => {
  const before = await page.locator('#conversation-list .conversation').count();
  await page.locator('#delete-conversation').click(); // the confirmation is accepted
  await page.waitForFunction((n) => document.querySelectorAll('#conversation-list .conversation').length === n - 1, before);
  check(await page.locator('#messages .message').count() === 0, 'the thread is cleared');
  check(await page.locator('#delete-conversation').isHidden(), 'nothing left to delete');
});

await step('a model outage reads as a sentence, not JSON', async () => {
  await page.locator('nav [data-view=chat]').click();
  await page.locator('#composer-input').fill('please be unavailable');
  await page.locator('#send').click();
  const error = page.locator('.message.assistant.failed .error');
  await error.waitFor();
  const text = await error.innerText();
  check(/model is unavailable/i.test(text) && !text.includes('{'), `unreadable error: ${text}`);
});

await step('on a phone-sized screen everything is reachable in one column', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.locator('#composer-input').waitFor();
  await page.screenshot({ path: path.join(shots, 'phone-chat.png'), fullPage: true });
  // Nothing makes the page itself scroll sideways (a strip that scrolls inside itself is fine).
  const sideways = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(sideways <= 1, `the page scrolls ${sideways} px sideways on a phone`);
  await page.locator('nav [data-view=tasks]').click();
  await page.locator('#task-list .task').first().waitFor();
  await page.screenshot({ path: path.join(shots, 'phone-tasks.png'), fullPage: true });
});

await step('"Sign in with" a configured OpenID Connect provider: code flow with PKCE, state checked', async () => {
  const fresh = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const other = await fresh.newPage();
  await other.goto(`${base}/`);
  await other.getByRole('button', { name: 'Sign in with Test IdP' }).click();
  await other.locator('#me', { hasText: 'Alice Example' }).waitFor();
  check(!other.url().includes('code='), `the code stays in the address bar: ${other.url()}`);
  const session = await other.evaluate(() => localStorage.getItem('switchboard.token'));
  const me = await (await fetch(`${base}/api/v1/me`, { headers: { Authorization: `Bearer ${session}` } })).json();
  check(me.email === 'alice@idp.test' && me.issuer === idp.issuer, `signed in as ${JSON.stringify(me)}`);
  check(!(await other.content()).includes(CLIENT_SECRET), 'the client secret never reaches the page');
  await other.screenshot({ path: path.join(shots, 'signed-in-with-provider.png') });

  // A forged answer (no request from this browser, or another state) is refused.
  await other.evaluate(() => localStorage.clear());
  await other.goto(`${base}/?code=forged&state=forged`);
  await other.locator('#signin-error', { hasText: 'did not match' }).waitFor();
  // The person declines at the provider.
  idp.control.deny = true;
  await other.getByRole('button', { name: 'Sign in with Test IdP' }).click();
  await other.locator('#signin-error', { hasText: 'the user declined' }).waitFor();
  idp.control.deny = false;
  await fresh.close();

  // The exchange endpoint itself: unknown provider 404, empty fields 400, a refused code 401.
  const exchange = (id, body) => fetch(`${base}/api/v1/auth/providers/${id}/token`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const good = { code: 'x', code_verifier: 'y'.repeat(43), redirect_uri: `${base}/` };
  check((await exchange('7', good)).status === 404, 'an unknown provider is 404');
  check((await exchange('0', { ...good, code: '' })).status === 400, 'an empty code is 400');
  const refused = await exchange('0', good);
  check(refused.status === 401 && (await refused.json()).error.code === 'code_exchange_failed', 'a refused code is 401');
});

await step('the rate limit reads as when to try again', async () => {
  // A second server with a small budget: signing in, the lists and one chat use it up.
  const limitedData = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-web-limited-'));
  const { child: limited, link } = await serve(limitedData, { ...env, SWITCHBOARD_RATE_LIMIT_PER_MINUTE: '4', SWITCHBOARD_OIDC: '[]' });
  try {
    const fresh = await browser.newContext();
    const other = await fresh.newPage();
    await other.goto(link);
    await other.locator('#me', { hasText: 'Local user' }).waitFor();
    for (const text of ['hello once', 'hello twice']) {
      await other.locator('#composer-input').fill(text);
      await other.locator('#send').click();
      await other.locator('#send:not([disabled])').waitFor();
    }
    const error = other.locator('.message.assistant.failed .error').first();
    await error.waitFor();
    const shown = await error.innerText();
    check(/^Too many requests\. Try again in \d+ seconds?\.$/.test(shown), `unreadable: ${shown}`);
    await fresh.close();
  } finally {
    limited.kill('SIGTERM');
    fs.rmSync(limitedData, { recursive: true, force: true });
  }
});

await step('the page logged no errors to the console', async () => {
  // The outage above is reported by fetch as a failed resource; anything else is a defect.
  const unexpected = consoleErrors.filter((e) => !/status of (50\d|429)/.test(e));
  check(unexpected.length === 0, unexpected.join('\n'));
});

await browser.close();
server.kill('SIGTERM');
model.close();
idp.close();
fs.rmSync(data, { recursive: true, force: true });
console.log(failures === 0 ? `all steps passed; screenshots in ${shots}` : `${failures} step(s) failed; screenshots in ${shots}`);
process.exit(failures === 0 ? 0 : 1);
