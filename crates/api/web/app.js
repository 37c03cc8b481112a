// @ts-check
// Switchboard's web page: one module, no build step. The types come from `api.d.ts`, which is
// generated from the server's /openapi.json (the browser tests regenerate it and fail on drift).

/** @typedef {import('./api').components['schemas']} S */
/** @typedef {S['Conversation']} Conversation */
/** @typedef {S['Message']} Message */
/** @typedef {S['ChatReply']} ChatReply */
/** @typedef {S['MissingCredential']} MissingCredential */
/** @typedef {S['Task']} Task */
/** @typedef {S['CatalogEntry']} CatalogEntry */
/** @typedef {S['SearchHit']} SearchHit */
/** @typedef {S['ServerCredentials']} ServerCredentials */
/** @typedef {S['ConnectionView']} ConnectionView */
/** @typedef {S['Agent']} Agent */
/** @typedef {S['Job']} Job */
/** @typedef {S['Me']} Me */
/** @typedef {S['Provider']} Provider */
/** @typedef {S['Session']} Session */
/** @typedef {{tool: string, args: unknown, result?: unknown, is_error?: boolean, duration_ms?: number}} ToolRecord */

const TOKEN_KEY = 'switchboard.token';
/** The sign-in in progress at a provider: which one, the PKCE verifier, the state sent. */
const SIGN_IN_KEY = 'switchboard.sign-in';

/** Everything the page knows; one object, re-rendered piecewise. */
const state = {
  /** @type {string | null} */ token: null,
  /** @type {string | null} */ conversation: null,
  /** @type {Conversation[]} */ conversations: [],
  busy: false,
  /** @type {AbortController | null} */ following: null,
};

/** @param {string} id */
function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing`);
  return el;
}

/**
 * Creates an element with properties and children.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, unknown>} [props]
 * @param {(Node | string | null | undefined | false)[]} [children]
 * @returns {HTMLElementTagNameMap[K]}
 */
function h(tag, props = {}, children = []) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), /** @type {EventListener} */ (value));
    } else if (key === 'class') {
      el.className = String(value);
    } else if (key in el && key !== 'list') {
      /** @type {any} */ (el)[key] = value;
    } else {
      el.setAttribute(key, String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return el;
}

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {number | null} retryAfter seconds
   */
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/**
 * Calls the API; a failure becomes an ApiError with the server's code and message.
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<Response>}
 */
async function request(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, 'offline', 'Switchboard cannot be reached. Check that the server is running.', null);
  }
  if (response.ok) return response;
  /** @type {any} */
  let detail = null;
  try {
    detail = (await response.json()).error;
  } catch {
    /* not JSON: the status says enough */
  }
  const retry = Number(response.headers.get('Retry-After'));
  throw new ApiError(
    response.status,
    detail?.code ?? `http_${response.status}`,
    detail?.message ?? response.statusText,
    Number.isFinite(retry) && retry > 0 ? retry : null,
  );
}

/**
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 */
async function api(method, path, body) {
  const response = await request(method, path, body);
  return response.status === 204 ? null : response.json();
}

/**
 * Reads a Server-Sent Events body, calling `onEvent` for each event.
 * @param {Response} response
 * @param {(name: string, data: any) => void} onEvent
 */
async function readEvents(response, onEvent) {
  if (!response.body) return;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length === 0) continue;
      let payload;
      try {
        payload = JSON.parse(data.join('\n'));
      } catch {
        payload = data.join('\n');
      }
      onEvent(name, payload);
    }
  }
}

/**
 * What a person should read for an error: never raw JSON.
 * @param {unknown} error
 */
function explain(error) {
  if (!(error instanceof ApiError)) return `Something went wrong: ${String(error)}`;
  switch (error.status) {
    case 429:
      return error.retryAfter
        ? `Too many requests. Try again in ${error.retryAfter} second${error.retryAfter === 1 ? '' : 's'}.`
        : 'Too many requests. Try again in a moment.';
    case 503:
      return `The model is unavailable right now. ${error.message.includes('kept') ? 'Your message was kept; ' : ''}try again shortly.`;
    case 502:
      return `The model service answered with an error: ${error.message}`;
    case 401:
      return 'Your sign-in is no longer valid. Sign in again.';
    default:
      return error.message.charAt(0).toUpperCase() + error.message.slice(1);
  }
}

let toastTimer = 0;
/** @param {string} text */
function toast(text) {
  const el = $('toast');
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => (el.hidden = true), 8000);
}

/**
 * Runs an action, turning its failure into a readable message.
 * @param {() => Promise<void>} action
 */
async function attempt(action) {
  try {
    await action();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      signOut('Your sign-in is no longer valid. Sign in again.');
      return;
    }
    toast(explain(error));
  }
}

// ---------------------------------------------------------------- sign-in

/** Takes `#token=…` from the address (the sign-in link), keeps it, and clears the address bar. */
function takeTokenFromAddress() {
  const match = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (!match) return;
  localStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
  history.replaceState(null, '', location.pathname + location.search);
}

/** @param {Uint8Array} bytes */
function base64url(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Shows a "Sign in with …" button for each configured OpenID Connect provider. */
async function showProviders() {
  /** @type {Provider[]} */
  let providers = [];
  try {
    providers = (await (await fetch('/api/v1/auth/providers')).json()).providers ?? [];
  } catch {
    /* without the list the token field still works */
  }
  $('providers').replaceChildren(
    ...providers.map((p) => h('button', { type: 'button', class: 'primary', onclick: () => beginSignIn(p) }, [`Sign in with ${p.name}`])),
  );
}

/**
 * Sends the person to the provider: authorization code with PKCE (S256) and a one-time state.
 * @param {Provider} provider
 */
async function beginSignIn(provider) {
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  const stateValue = base64url(crypto.getRandomValues(new Uint8Array(16)));
  const redirect = `${location.origin}/`;
  sessionStorage.setItem(SIGN_IN_KEY, JSON.stringify({ provider: provider.id, verifier, state: stateValue, redirect }));
  const url = new URL(provider.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: provider.client_id,
    redirect_uri: redirect,
    scope: provider.scope,
    state: stateValue,
    code_challenge: base64url(new Uint8Array(digest)),
    code_challenge_method: 'S256',
  }).toString();
  location.assign(url.toString());
}

/**
 * Finishes a sign-in the provider sent back (`?code=&state=` or `?error=`): checks the state,
 * has the server exchange the code, keeps the session token. Returns why it failed, if it did.
 * @returns {Promise<string | null>}
 */
async function finishSignIn() {
  const params = new URLSearchParams(location.search);
  if (!params.has('code') && !params.has('error')) return null;
  history.replaceState(null, '', location.pathname);
  const saved = JSON.parse(sessionStorage.getItem(SIGN_IN_KEY) ?? 'null');
  sessionStorage.removeItem(SIGN_IN_KEY);
  if (params.has('error')) return `Sign-in was not completed: ${params.get('error_description') ?? params.get('error')}.`;
  if (!saved || saved.state !== params.get('state')) {
    return 'Sign-in failed: the answer did not match this browser’s request. Try again.';
  }
  const response = await fetch(`/api/v1/auth/providers/${encodeURIComponent(saved.provider)}/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ code: params.get('code'), code_verifier: saved.verifier, redirect_uri: saved.redirect }),
  });
  if (!response.ok) {
    const detail = await response.json().catch(() => null);
    return `Sign-in failed: ${detail?.error?.message ?? response.statusText}.`;
  }
  /** @type {Session} */
  const session = await response.json();
  localStorage.setItem(TOKEN_KEY, session.access_token);
  return null;
}

/** @param {string} [why] */
function signOut(why) {
  localStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.conversation = null;
  $('app').hidden = true;
  $('signin').hidden = false;
  $('signin-error').textContent = why ?? '';
  /** @type {HTMLInputElement} */ ($('signin-token')).focus();
  showProviders();
}

async function start() {
  takeTokenFromAddress();
  const failure = await finishSignIn();
  if (failure) {
    signOut(failure);
    return;
  }
  state.token = localStorage.getItem(TOKEN_KEY);
  if (!state.token) {
    signOut();
    return;
  }
  try {
    /** @type {Me} */
    const me = await api('GET', '/api/v1/me');
    $('me').textContent = me.name ?? me.email ?? me.subject;
  } catch (error) {
    signOut(error instanceof ApiError && error.status === 401 ? 'That token was not accepted.' : explain(error));
    return;
  }
  $('signin').hidden = true;
  $('app').hidden = false;
  showView('chat');
  await Promise.all([attempt(loadConversations), attempt(loadTasks)]);
  /** @type {HTMLTextAreaElement} */ ($('composer-input')).focus();
}

// ---------------------------------------------------------------- views

/** @param {string} name */
function showView(name) {
  for (const button of document.querySelectorAll('nav [data-view]')) {
    if (button.getAttribute('data-view') === name) button.setAttribute('aria-current', 'page');
    else button.removeAttribute('aria-current');
  }
  for (const view of document.querySelectorAll('.view')) {
    view.classList.toggle('active', view.id === `view-${name}`);
  }
  $('app').dataset.view = name;
  if (name === 'tasks') attempt(loadTasks);
  if (name === 'catalog') attempt(() => searchCatalog(/** @type {HTMLInputElement} */ ($('catalog-search')).value));
  if (name === 'catalog') attempt(loadCredentials);
  if (name === 'jobs') attempt(loadJobs);
}

// ---------------------------------------------------------------- conversations

async function loadConversations() {
  const page = await api('GET', '/api/v1/conversations?limit=50');
  state.conversations = page.items;
  renderConversations();
}

function renderConversations() {
  const list = $('conversation-list');
  list.replaceChildren(
    ...state.conversations.map((c) =>
      h('li', {}, [
        h(
          'button',
          {
            type: 'button',
            class: 'conversation',
            'aria-current': c.id === state.conversation ? 'true' : null,
            onclick: () => attempt(() => openConversation(c.id)),
          },
          [h('span', { class: 'title' }, [c.title || 'Untitled']), h('small', {}, [`${c.message_count} messages`])],
        ),
      ]),
    ),
  );
  const current = state.conversations.find((c) => c.id === state.conversation);
  $('thread-title').textContent = current ? current.title || 'Untitled' : 'New conversation';
  $('rename-conversation').hidden = !current;
  $('delete-conversation').hidden = !current;
}

/** @param {string} id */
async function openConversation(id) {
  const detail = await api('GET', `/api/v1/conversations/${id}`);
  state.conversation = id;
  renderConversations();
  const list = $('messages');
  list.replaceChildren();
  for (const message of /** @type {Message[]} */ (detail.messages)) {
    if (message.role === 'tool') continue;
    const bubble = addBubble(message.role, message.content);
    const meta = /** @type {any} */ (message.metadata) ?? {};
    for (const call of meta.tool_calls ?? []) bubble.tools.append(toolCard(call));
    if (meta.incomplete) bubble.el.classList.add('incomplete');
  }
  list.scrollTop = list.scrollHeight;
}

function newConversation() {
  state.conversation = null;
  $('messages').replaceChildren();
  renderConversations();
  /** @type {HTMLTextAreaElement} */ ($('composer-input')).focus();
}

async function renameConversation() {
  const current = state.conversations.find((c) => c.id === state.conversation);
  if (!current) return;
  const title = prompt('New title', current.title ?? '');
  if (title === null || !title.trim()) return;
  await api('PATCH', `/api/v1/conversations/${current.id}`, { title: title.trim() });
  await loadConversations();
}

async function deleteConversation() {
  if (!state.conversation || !confirm('Delete this conversation and its messages?')) return;
  await api('DELETE', `/api/v1/conversations/${state.conversation}`);
  newConversation();
  await loadConversations();
}

// ---------------------------------------------------------------- messages and tool cards

/**
 * @param {string} role
 * @param {string} text
 */
function addBubble(role, text) {
  const body = h('div', { class: 'body' }, [text]);
  const tools = h('div', { class: 'tools' });
  const extra = h('div', { class: 'extra' });
  const el = h('li', { class: `message ${role}` }, [h('span', { class: 'who' }, [role === 'user' ? 'You' : 'Switchboard']), tools, body, extra]);
  const list = $('messages');
  list.append(el);
  list.scrollTop = list.scrollHeight;
  return { el, body, tools, extra };
}

/** @param {unknown} value */
function pretty(value) {
  if (typeof value === 'string') return value;
  return JSON.stringify(value, null, 2);
}

/**
 * A collapsible card for one tool call; `result` absent means it is still running.
 * @param {ToolRecord} call
 */
function toolCard(call) {
  const card = h('details', { class: 'tool-card' });
  fillToolCard(card, call);
  return card;
}

/**
 * @param {HTMLElement} card
 * @param {ToolRecord} call
 * @param {string} [progress]
 */
function fillToolCard(card, call, progress) {
  const done = call.result !== undefined;
  card.classList.toggle('error', Boolean(call.is_error));
  card.classList.toggle('running', !done);
  const status = !done ? progress ?? 'running…' : call.is_error ? `failed · ${call.duration_ms} ms` : `${call.duration_ms} ms`;
  card.replaceChildren(
    h('summary', {}, [h('span', { class: 'tool-name' }, [call.tool]), ' ', h('span', { class: 'tool-status' }, [status])]),
    h('div', { class: 'tool-detail' }, [
      h('h4', {}, ['Arguments']),
      h('pre', {}, [pretty(call.args)]),
      done ? h('h4', {}, [call.is_error ? 'Error' : 'Result']) : null,
      done ? h('pre', {}, [pretty(call.result)]) : null,
    ]),
  );
}

/**
 * Sends a message and streams the reply into the thread.
 * @param {string} text
 * @param {Record<string, Record<string, string>>} [credentials]
 */
async function send(text, credentials) {
  if (state.busy) return;
  state.busy = true;
  $('send').setAttribute('disabled', '');
  addBubble('user', credentials ? `${text} (credentials sent, not shown)` : text);
  const reply = addBubble('assistant', '');
  reply.el.classList.add('streaming');
  /** @type {HTMLElement[]} */
  const running = [];
  /** @type {ChatReply | null} */
  let ended = null;
  try {
    const body = { message: text, conversation_id: state.conversation ?? undefined, credentials };
    const response = await request('POST', '/api/v1/chat/stream', body);
    await readEvents(response, (name, data) => {
      if (name === 'message_start') {
        state.conversation = data.conversation_id;
      } else if (name === 'delta') {
        reply.body.textContent += data.text;
        $('messages').scrollTop = $('messages').scrollHeight;
      } else if (name === 'tool_call') {
        const card = toolCard({ tool: data.tool, args: data.args });
        running.push(card);
        reply.tools.append(card);
      } else if (name === 'tool_progress') {
        const card = running[0];
        const total = data.total ? `/${data.total}` : '';
        if (card) card.querySelector('.tool-status')?.replaceChildren(`${data.message ?? 'working'} (${data.progress}${total})`);
      } else if (name === 'tool_result') {
        const card = running.shift();
        if (card) fillToolCard(card, data);
        else reply.tools.append(toolCard(data));
      } else if (name === 'message_end') {
        ended = data;
      } else if (name === 'error') {
        throw new ApiError(data.status ?? 500, data.code, data.message, null);
      }
    });
    if (ended) afterReply(reply, ended);
  } catch (error) {
    reply.el.classList.add('failed');
    reply.extra.append(h('p', { class: 'error', role: 'alert' }, [explain(error)]));
    if (error instanceof ApiError && error.status === 401) signOut(explain(error));
  } finally {
    reply.el.classList.remove('streaming');
    state.busy = false;
    $('send').removeAttribute('disabled');
    attempt(loadConversations);
  }
}

/**
 * What a finished reply brings besides its text: a credentials form, an agent card, changed tasks.
 * @param {ReturnType<typeof addBubble>} reply
 * @param {ChatReply} ended
 */
function afterReply(reply, ended) {
  if (!reply.body.textContent) reply.body.textContent = ended.message.content;
  if (ended.required_credentials.length > 0) reply.extra.append(credentialsForm(ended.required_credentials));
  if (ended.agent_created && ended.agent_id) attempt(async () => reply.extra.append(await agentCard(ended.agent_id ?? '')));
  const touched = ended.tool_calls.some((c) => /_task/.test(/** @type {any} */ (c).tool));
  if (touched) attempt(loadTasks);
}

// ---------------------------------------------------------------- workflows

/**
 * A form for exactly the credentials a workflow still needs; sending it continues the workflow.
 * @param {MissingCredential[]} missing
 */
function credentialsForm(missing) {
  const form = h('form', { class: 'credentials-form' }, [h('h3', {}, ['Credentials needed'])]);
  /** @type {Map<string, MissingCredential[]>} */
  const byServer = new Map();
  for (const item of missing) byServer.set(item.mcp_server, [...(byServer.get(item.mcp_server) ?? []), item]);
  for (const [server, items] of byServer) {
    const fieldset = h('fieldset', {}, [h('legend', {}, [server])]);
    for (const item of items) {
      if (item.auth_url) {
        fieldset.append(connectField(server, item));
        continue;
      }
      const id = `cred-${server}-${item.credential_key}`.replace(/[^A-Za-z0-9_-]/g, '_');
      fieldset.append(h('div', { class: 'field' }, [
        h('label', { for: id }, [item.credential_key]),
        h('p', { class: 'hint' }, [item.description]),
        item.instructions.length ? h('ol', { class: 'steps' }, item.instructions.map((s) => h('li', {}, [s]))) : null,
        item.link ? h('p', {}, [h('a', { href: item.link, target: '_blank', rel: 'noopener noreferrer' }, ['Where to get it'])]) : null,
        h('input', {
          id,
          name: item.credential_key,
          type: item.secret ? 'password' : 'text',
          autocomplete: 'off',
          required: true,
          placeholder: item.format ?? '',
          'data-server': server,
        }),
      ]));
    }
    form.append(fieldset);
  }
  form.append(h('button', { type: 'submit' }, ['Save and continue']));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    /** @type {Record<string, Record<string, string>>} */
    const credentials = {};
    for (const input of form.querySelectorAll('input')) {
      const server = input.dataset.server ?? '';
      (credentials[server] ??= {})[input.name] = input.value;
    }
    form.remove();
    const servers = Object.keys(credentials);
    if (servers.length === 0) send('My accounts are connected; please continue.');
    else send(`Credentials for ${servers.join(', ')}`, credentials);
  });
  return form;
}

/**
 * A "Connect" link for an account connected with OAuth: it opens the provider in a new tab, and
 * the field says when the account is connected (the page asks every two seconds meanwhile).
 * @param {string} server
 * @param {MissingCredential} item
 */
function connectField(server, item) {
  const status = h('span', { class: 'connect-status', role: 'status' }, ['Not connected yet.']);
  const link = h('a', {
    class: 'connect button',
    href: item.auth_url ?? '#',
    target: '_blank',
    rel: 'noopener noreferrer',
    onclick: () => watchConnection(server, status),
  }, [`Connect ${server}`]);
  return h('div', { class: 'field connect-field' }, [
    h('p', { class: 'hint' }, [item.description]),
    item.instructions.length ? h('ol', { class: 'steps' }, item.instructions.map((s) => h('li', {}, [s]))) : null,
    h('p', {}, [link, ' ', status]),
  ]);
}

/**
 * Asks the server every two seconds (for five minutes at most) whether `server` is connected.
 * @param {string} server the catalog entry's name
 * @param {HTMLElement} status where to say so
 */
function watchConnection(server, status) {
  status.textContent = 'Waiting for the provider…';
  const until = Date.now() + 5 * 60 * 1000;
  const check = async () => {
    /** @type {{items: ConnectionView[]}} */
    const list = await api('GET', '/api/v1/connections');
    const found = list.items.find((c) => c.server === server);
    if (found?.status === 'connected') {
      status.textContent = 'Connected.';
      status.classList.add('ok');
      attempt(loadCredentials);
    } else if (Date.now() < until) {
      setTimeout(() => attempt(check), 2000);
    }
  };
  setTimeout(() => attempt(check), 1000);
}

const FORMATS = [
  ['claude', 'Claude Desktop'],
  ['fast-agent', 'fast-agent'],
  ['vscode', 'VS Code'],
  ['mcp-json', '.mcp.json'],
];

/**
 * A card for a created agent: its servers and steps, its configuration, and a way to run it.
 * @param {string} id
 */
async function agentCard(id) {
  /** @type {Agent} */
  const agent = await api('GET', `/api/v1/agents/${id}`);
  const output = h('pre', { class: 'config', hidden: true });
  /** @param {string} format */
  const config = (format) => request('GET', `/api/v1/agents/${id}/config?format=${format}`);
  const input = h('input', { placeholder: 'What should it do now?', 'aria-label': 'Input for the run' });
  return h('section', { class: 'agent-card', 'aria-label': `Agent ${agent.name}` }, [
    h('h3', {}, [`Agent: ${agent.name}`]),
    h('p', {}, [agent.description]),
    h('p', {}, [h('strong', {}, ['Servers: ']), agent.servers.join(', ')]),
    agent.steps.length ? h('ol', { class: 'steps' }, agent.steps.map((s) => h('li', {}, [s]))) : null,
    h(
      'div',
      { class: 'buttons' },
      FORMATS.flatMap(([format, label]) => [
        h('button', {
          type: 'button',
          onclick: () =>
            attempt(async () => {
              const text = await (await config(format)).text();
              output.textContent = text;
              output.hidden = false;
              try {
                await navigator.clipboard.writeText(text);
                toast(`${label} configuration copied.`);
              } catch {
                toast(`${label} configuration shown below; copy it from there.`);
              }
            }),
        }, [`Copy ${label}`]),
        h('button', {
          type: 'button',
          onclick: () =>
            attempt(async () => {
              const response = await config(format);
              const name = /filename="([^"]+)"/.exec(response.headers.get('Content-Disposition') ?? '')?.[1] ?? 'config';
              const link = h('a', { href: URL.createObjectURL(await response.blob()), download: name });
              link.click();
              URL.revokeObjectURL(link.href);
            }),
        }, [`Download ${label}`]),
      ]),
    ),
    output,
    h('form', {
      class: 'inline-form',
      onsubmit: (/** @type {Event} */ event) => {
        event.preventDefault();
        attempt(async () => {
          const job = await api('POST', '/api/v1/jobs', { agent_id: id, input: input.value || agent.description });
          showView('jobs');
          followJob(job.job_id);
        });
      },
    }, [input, h('button', { type: 'submit' }, ['Run as a job'])]),
  ]);
}

// ---------------------------------------------------------------- tasks

async function loadTasks() {
  const page = await api('GET', '/api/v1/tasks?limit=100');
  const list = $('task-list');
  list.replaceChildren(...page.items.map(taskRow));
  if (page.items.length === 0) list.append(h('li', { class: 'empty' }, ['No tasks yet.']));
}

/** @param {Task} task */
function taskRow(task) {
  const done = task.status === 'completed';
  const title = h('span', { class: 'task-title' }, [task.title]);
  const row = h('li', { class: `task ${done ? 'done' : ''}`, 'data-number': task.number }, [
    h('input', {
      type: 'checkbox',
      checked: done,
      disabled: done,
      'aria-label': `Complete task ${task.number}: ${task.title}`,
      onchange: () =>
        attempt(async () => {
          await api('POST', `/api/v1/tasks/${task.id}/complete`);
          await loadTasks();
        }),
    }),
    h('span', { class: 'number' }, [`#${task.number}`]),
    title,
    task.due_date ? h('small', {}, [`due ${task.due_date}`]) : null,
    h('button', {
      type: 'button',
      'aria-label': `Edit task ${task.number}`,
      onclick: () => {
        const field = h('input', { value: task.title, 'aria-label': `New title of task ${task.number}` });
        const save = () =>
          attempt(async () => {
            if (field.value.trim() && field.value !== task.title) {
              await api('PATCH', `/api/v1/tasks/${task.id}`, { title: field.value.trim() });
            }
            await loadTasks();
          });
        field.addEventListener('keydown', (event) => {
          if (event.key === 'Enter') save();
          if (event.key === 'Escape') attempt(loadTasks);
        });
        field.addEventListener('blur', save);
        title.replaceWith(field);
        field.focus();
      },
    }, ['Edit']),
    h('button', {
      type: 'button',
      class: 'danger',
      'aria-label': `Delete task ${task.number}`,
      onclick: () =>
        attempt(async () => {
          await api('DELETE', `/api/v1/tasks/${task.id}`);
          await loadTasks();
        }),
    }, ['Delete']),
  ]);
  return row;
}

// ---------------------------------------------------------------- catalog and credentials

let searchSeq = 0;
/** @param {string} text */
async function searchCatalog(text) {
  const seq = ++searchSeq;
  const query = text.trim();
  /** @type {(CatalogEntry & {score?: number, matched?: string[]})[]} */
  let entries;
  if (query) {
    const found = await api('GET', `/api/v1/servers/search?limit=10&q=${encodeURIComponent(query)}`);
    entries = found.results;
  } else {
    entries = (await api('GET', '/api/v1/servers?limit=100')).items;
  }
  if (seq !== searchSeq) return; // a newer search is on its way
  $('server-list').replaceChildren(...entries.map(serverItem));
  if (entries.length === 0) $('server-list').append(h('li', { class: 'empty' }, ['No server matches.']));
}

/** @param {CatalogEntry & {score?: number, matched?: string[]}} entry */
function serverItem(entry) {
  const tools = entry.tools ?? [];
  const credentials = entry.credentials ?? [];
  return h('li', {}, [
    h('details', { class: 'server' }, [
      h('summary', {}, [
        h('strong', {}, [entry.name]),
        entry.score !== undefined ? h('span', { class: 'score' }, [` ${entry.score.toFixed(3)} (${(entry.matched ?? []).join('+')})`]) : null,
      ]),
      h('p', {}, [entry.description]),
      tools.length ? h('h4', {}, ['Tools']) : null,
      tools.length ? h('ul', {}, tools.map((t) => h('li', {}, [h('code', {}, [t.name]), ` — ${t.description ?? ''}`]))) : null,
      credentials.length ? h('h4', {}, ['Credentials it needs']) : null,
      credentials.length
        ? h('ul', {}, credentials.map((c) => h('li', {}, [h('code', {}, [c.key]), ` ${c.required ? '(required)' : '(optional)'} — ${c.description}`])))
        : null,
      entry.oauth
        ? h('p', {}, [
          h('button', { type: 'button', onclick: () => attempt(() => connectServer(entry.slug ?? entry.name, entry.name)) }, ['Connect your account']),
        ])
        : null,
    ]),
  ]);
}

async function loadCredentials() {
  /** @type {{items: ServerCredentials[]}} */
  const list = await api('GET', '/api/v1/credentials');
  /** @type {{items: ConnectionView[]}} */
  const connected = await api('GET', '/api/v1/connections');
  const el = $('credential-list');
  el.replaceChildren(
    ...connected.items.map((c) =>
      h('li', { class: 'credential connection' }, [
        h('strong', {}, [c.server]),
        ' ',
        h('span', {}, [
          c.status === 'connected' ? 'account connected' : 'needs to be connected again',
          c.scopes.length ? ` (${c.scopes.join(', ')})` : '',
        ]),
        ' ',
        c.status === 'connected'
          ? null
          : h('button', { type: 'button', onclick: () => attempt(() => connectServer(c.slug, c.server)) }, ['Reconnect']),
        h('button', {
          type: 'button',
          class: 'danger',
          'aria-label': `Disconnect ${c.server}`,
          onclick: () =>
            attempt(async () => {
              if (!confirm(`Disconnect your ${c.server} account?`)) return;
              await api('DELETE', `/api/v1/connections/${encodeURIComponent(c.slug)}`);
              await loadCredentials();
            }),
        }, ['Disconnect']),
      ]),
    ),
    ...list.items.filter((server) => server.keys.length > 0).map((server) =>
      h('li', { class: 'credential' }, [
        h('strong', {}, [server.server]),
        ' ',
        h('span', {}, [server.keys.map((k) => `${k.key}: ${k.set ? 'set' : 'missing'}`).join(', ')]),
        ' ',
        h('button', {
          type: 'button',
          class: 'danger',
          'aria-label': `Remove the credentials for ${server.server}`,
          onclick: () =>
            attempt(async () => {
              if (!confirm(`Remove your credentials for ${server.server}?`)) return;
              await api('DELETE', `/api/v1/credentials/${encodeURIComponent(server.slug)}`);
              await loadCredentials();
            }),
        }, ['Remove']),
      ]),
    ),
  );
  if (list.items.length === 0 && connected.items.length === 0) {
    el.append(h('li', { class: 'empty' }, ['No credentials stored, no account connected.']));
  }
}

/**
 * Starts connecting a server's account and opens the provider in a new tab.
 * @param {string} slug
 * @param {string} name
 */
async function connectServer(slug, name) {
  const tab = window.open('', '_blank');
  const started = await api('POST', `/api/v1/connections/${encodeURIComponent(slug)}`);
  if (tab) tab.location.href = started.auth_url;
  else window.location.assign(started.auth_url);
  toast(`Connecting ${name}: finish at the provider, then come back.`);
}

// ---------------------------------------------------------------- jobs

async function loadJobs() {
  const page = await api('GET', '/api/v1/jobs?limit=50');
  $('job-list').replaceChildren(...page.items.map(jobRow));
  if (page.items.length === 0) $('job-list').append(h('li', { class: 'empty' }, ['No jobs yet.']));
}

/** @param {Job} job */
function jobInput(job) {
  const input = /** @type {any} */ (job.input);
  return typeof input === 'string' ? input : input?.message ?? input?.input ?? pretty(input);
}

/** @param {Job} job */
function jobRow(job) {
  const result = /** @type {any} */ (job.result);
  return h('li', { class: `job ${job.status}`, 'data-job': job.id }, [
    h('div', { class: 'job-head' }, [
      h('span', { class: `status ${job.status}` }, [job.status]),
      ' ',
      h('span', { class: 'job-input' }, [jobInput(job)]),
    ]),
    result ? h('p', { class: 'job-result' }, [typeof result === 'string' ? result : result.message?.content ?? pretty(result)]) : null,
    job.error ? h('p', { class: 'error' }, [job.error]) : null,
    job.total_tokens ? h('small', {}, [`${job.total_tokens} tokens (${job.input_tokens} in, ${job.output_tokens} out)`]) : null,
    job.status === 'queued' || job.status === 'running'
      ? h('button', { type: 'button', onclick: () => followJob(job.id) }, ['Follow'])
      : null,
    job.status === 'queued' || job.status === 'running'
      ? h('button', {
          type: 'button',
          class: 'danger',
          onclick: () => attempt(async () => {
            await api('POST', `/api/v1/jobs/${job.id}/cancel`);
            await loadJobs();
          }),
        }, ['Cancel'])
      : null,
  ]);
}

/**
 * Shows a job's live progress (its event stream) until it finishes.
 * @param {string} id
 */
function followJob(id) {
  state.following?.abort();
  const controller = new AbortController();
  state.following = controller;
  attempt(async () => {
    await loadJobs();
    const row = document.querySelector(`[data-job="${id}"]`);
    const log = h('ol', { class: 'job-log', 'aria-live': 'polite' });
    row?.append(log);
    const response = await fetch(`/api/v1/jobs/${id}/events`, {
      headers: { Authorization: `Bearer ${state.token}` },
      signal: controller.signal,
    });
    if (!response.ok) throw new ApiError(response.status, 'events', 'the job’s progress could not be followed', null);
    let finished = false;
    await readEvents(response, (name, data) => {
      const line = name === 'status' ? `status: ${data.status}` : name === 'delta' ? null : name === 'tool_call' ? `tool: ${data.tool}` : name === 'result' ? 'result ready' : name;
      if (line) log.append(h('li', {}, [line]));
      if (name === 'status' && ['completed', 'failed', 'cancelled'].includes(data.status)) finished = true;
    });
    if (finished || !controller.signal.aborted) await loadJobs();
  });
}

// ---------------------------------------------------------------- wiring

function wire() {
  $('signin-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const field = /** @type {HTMLInputElement} */ ($('signin-token'));
    localStorage.setItem(TOKEN_KEY, field.value.trim());
    field.value = '';
    start();
  });
  $('signout').addEventListener('click', () => {
    request('POST', '/api/v1/auth/logout').catch(() => {});
    signOut();
  });
  // Back from a provider's tab: the catalog view shows what was connected meanwhile.
  window.addEventListener('focus', () => {
    if ($('app').dataset.view === 'catalog') attempt(loadCredentials);
  });
  for (const button of document.querySelectorAll('nav [data-view]')) {
    button.addEventListener('click', () => showView(button.getAttribute('data-view') ?? 'chat'));
  }
  $('new-conversation').addEventListener('click', newConversation);
  $('rename-conversation').addEventListener('click', () => attempt(renameConversation));
  $('delete-conversation').addEventListener('click', () => attempt(deleteConversation));
  const input = /** @type {HTMLTextAreaElement} */ ($('composer-input'));
  $('composer').addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || state.busy) return;
    input.value = '';
    send(text);
  });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey) {
      event.preventDefault();
      /** @type {HTMLFormElement} */ ($('composer')).requestSubmit();
    }
  });
  $('task-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const field = /** @type {HTMLInputElement} */ ($('task-title'));
    attempt(async () => {
      await api('POST', '/api/v1/tasks', { title: field.value.trim() });
      field.value = '';
      await loadTasks();
    });
  });
  let timer = 0;
  $('catalog-search').addEventListener('input', (event) => {
    clearTimeout(timer);
    const text = /** @type {HTMLInputElement} */ (event.target).value;
    timer = window.setTimeout(() => attempt(() => searchCatalog(text)), 150);
  });
  $('job-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const field = /** @type {HTMLInputElement} */ ($('job-message'));
    attempt(async () => {
      const job = await api('POST', '/api/v1/jobs', { message: field.value.trim() });
      field.value = '';
      followJob(job.job_id);
    });
  });
  window.addEventListener('hashchange', () => {
    if (location.hash.includes('token=')) start();
  });
}

wire();
start();
