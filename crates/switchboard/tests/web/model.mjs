// A scripted OpenAI-compatible model service for the browser tests: it speaks the real Chat
// Completions wire format (JSON, and SSE when `stream` is set) and answers by rule from the
// conversation, so the page can be driven in any order.
import http from 'node:http';

/** What the model says next, from the request it was sent. */
function decide(body) {
  const messages = body.messages ?? [];
  const system = messages.find((m) => m.role === 'system')?.content ?? '';
  const last = messages[messages.length - 1] ?? {};
  if (system.startsWith('You design agents')) {
    const candidates = JSON.parse(system.slice(system.indexOf('Candidates:\n') + 'Candidates:\n'.length));
    const chosen = candidates.find((c) => /everything test/i.test(c.name)) ?? candidates[0];
    return {
      text: JSON.stringify({
        status: 'ready',
        name: 'Echo helper',
        servers: [chosen.name],
        steps: ['Take the message', 'Echo it back with the server'],
        system_prompt: 'Echo what the user says.',
      }),
    };
  }
  if (last.role === 'tool') {
    if (last.content.includes('pending_credentials')) return { text: 'I need a credential before I can build this.' };
    return { text: /no task|not found|unknown/i.test(last.content) ? 'That task does not exist.' : 'Done: the tool answered.' };
  }
  const said = typeof last.content === 'string' ? last.content : '';
  const task = /add a task called (.+)/i.exec(said);
  if (task) return { tool: 'add_task', args: { title: task[1].trim() } };
  const complete = /complete task (\d+)/i.exec(said);
  if (complete) return { tool: 'complete_task', args: { task: Number(complete[1]) } };
  if (/workflow/i.test(said)) return { tool: 'create_workflow_agent', args: { description: said } };
  if (/be unavailable/i.test(said)) return { status: 503 };
  return { text: 'Hello from the scripted model.' };
}

const usage = { prompt_tokens: 12, completion_tokens: 6, total_tokens: 18 };

function chunk(delta, finish) {
  return `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', model: 'scripted', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
}

function answer(body, res) {
  const next = decide(body);
  if (next.status) {
    res.writeHead(next.status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message: 'scripted outage', type: 'server_error' } }));
    return;
  }
  const call = next.tool && { id: 'call_1', type: 'function', function: { name: next.tool, arguments: JSON.stringify(next.args) } };
  if (!body.stream) {
    const message = call ? { role: 'assistant', content: null, tool_calls: [call] } : { role: 'assistant', content: next.text };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: 'c', object: 'chat.completion', model: 'scripted', choices: [{ index: 0, message, finish_reason: call ? 'tool_calls' : 'stop' }], usage }));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  if (call) {
    res.write(chunk({ role: 'assistant', tool_calls: [{ index: 0, ...call }] }, null));
  } else {
    // The text in a few pieces, a little apart, so the page shows it arriving.
    const words = next.text.split(/(?<= )/);
    for (const word of words) res.write(chunk({ content: word }, null));
  }
  res.write(chunk({}, call ? 'tool_calls' : 'stop'));
  res.write(`data: ${JSON.stringify({ id: 'c', choices: [], usage })}\n\ndata: [DONE]\n\n`);
  res.end();
}

/** Starts the server on a free port; resolves to its base URL and a close function. */
export function startModel() {
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (d) => (raw += d));
    req.on('end', () => {
      try {
        answer(JSON.parse(raw || '{}'), res);
      } catch (error) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: String(error) } }));
      }
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
      resolve({ baseUrl: `http://127.0.0.1:${port}/v1`, close: () => server.close() });
    });
  });
}
