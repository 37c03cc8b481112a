// A local OpenID Connect provider for the browser tests: discovery, an authorization endpoint
// that signs "Alice Example" in at once (or denies, when told), a token endpoint that checks the
// code (single use), the redirect URI, the client and the PKCE verifier, and a JWKS.
import crypto from 'node:crypto';
import http from 'node:http';

export const CLIENT_ID = 'web-client';
export const CLIENT_SECRET = 'web-secret-for-tests';

const b64url = (data) => Buffer.from(data).toString('base64url');

export function startIdp() {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'web-test', alg: 'RS256', use: 'sig' };
  const codes = new Map();
  const control = { deny: false, tokenRequests: 0 };
  let issuer = '';

  const sign = (claims) => {
    const head = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: jwk.kid }));
    const body = b64url(JSON.stringify(claims));
    const signature = crypto.sign('sha256', Buffer.from(`${head}.${body}`), privateKey);
    return `${head}.${body}.${b64url(signature)}`;
  };
  const json = (res, status, value) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(value));
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, issuer);
    if (url.pathname === '/.well-known/openid-configuration') {
      return json(res, 200, { issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks` });
    }
    if (url.pathname === '/jwks') return json(res, 200, { keys: [jwk] });
    if (url.pathname === '/authorize') {
      const q = url.searchParams;
      const back = new URL(q.get('redirect_uri') ?? '');
      back.searchParams.set('state', q.get('state') ?? '');
      const valid = q.get('response_type') === 'code' && q.get('client_id') === CLIENT_ID &&
        q.get('code_challenge_method') === 'S256' && (q.get('code_challenge') ?? '').length >= 43 &&
        (q.get('scope') ?? '').split(' ').includes('openid');
      if (!valid) {
        back.searchParams.set('error', 'invalid_request');
      } else if (control.deny) {
        back.searchParams.set('error', 'access_denied');
        back.searchParams.set('error_description', 'the user declined');
      } else {
        const code = b64url(crypto.randomBytes(16));
        codes.set(code, { challenge: q.get('code_challenge'), redirect: q.get('redirect_uri'), used: false });
        back.searchParams.set('code', code);
      }
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (url.pathname === '/token' && req.method === 'POST') {
      let raw = '';
      req.on('data', (d) => (raw += d));
      req.on('end', () => {
        control.tokenRequests += 1;
        const form = new URLSearchParams(raw);
        const grant = codes.get(form.get('code') ?? '');
        const verifier = form.get('code_verifier') ?? '';
        const challenge = b64url(crypto.createHash('sha256').update(verifier).digest());
        if (!grant || grant.used) return json(res, 400, { error: 'invalid_grant', error_description: 'unknown or used code' });
        grant.used = true;
        if (form.get('grant_type') !== 'authorization_code' || form.get('client_id') !== CLIENT_ID ||
            form.get('client_secret') !== CLIENT_SECRET || form.get('redirect_uri') !== grant.redirect ||
            challenge !== grant.challenge) {
          return json(res, 400, { error: 'invalid_grant', error_description: 'the request does not match the code' });
        }
        const now = Math.floor(Date.now() / 1000);
        const id_token = sign({ iss: issuer, sub: 'oidc-alice', aud: CLIENT_ID, iat: now, exp: now + 300,
          email: 'alice@idp.test', name: 'Alice Example' });
        json(res, 200, { access_token: b64url(crypto.randomBytes(16)), token_type: 'Bearer', expires_in: 300, id_token });
      });
      return;
    }
    json(res, 404, { error: 'not_found' });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      issuer = `http://127.0.0.1:${server.address().port}`;
      resolve({ issuer, control, close: () => server.close() });
    });
  });
}
