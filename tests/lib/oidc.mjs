// OpenID Connect providers for the tests, on loopback:
//   startProvider — the npm `oidc-provider` (a certified implementation)
//     with its development login form; accounts are whatever login is typed,
//     with the groups given per login.
//   startFakeIdp — a deliberately small provider whose token endpoint
//     answers whatever ID token the test crafted (wrong audience, expired,
//     bad signature, another algorithm…), to check the core refuses each.
import http from 'node:http';
import net from 'node:net';
import { createHmac, createSign, generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function rsaKey(kid) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { privateKey, publicKey, jwk: { ...jwk, kid, use: 'sig', alg: 'RS256' }, publicJwk: { ...publicKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' } };
}

// accounts: { login: { groups: [...], email } }
export async function startProvider({ port, clientId, clientSecret, redirectUri, accounts = {} }) {
  const issuer = `http://127.0.0.1:${port}`;
  const key = rsaKey('k1');
  const provider = new Provider(issuer, {
    clients: [{ client_id: clientId, client_secret: clientSecret, redirect_uris: [redirectUri], response_types: ['code'], grant_types: ['authorization_code'], token_endpoint_auth_method: 'client_secret_basic' }],
    jwks: { keys: [key.jwk] },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    scopes: ['openid', 'profile', 'email', 'groups'],
    claims: { openid: ['sub'], profile: ['preferred_username', 'name'], email: ['email'], groups: ['groups'] },
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: true } },
    async findAccount(ctx, id) {
      const a = accounts[id] || {};
      return { accountId: id, async claims() { return { sub: `sub-${id}`, preferred_username: id, name: id, email: a.email || `${id}@example.test`, groups: a.groups || [] }; } };
    },
  });
  provider.on('server_error', (ctx, err) => { console.error('oidc-provider:', err); });
  const server = http.createServer(provider.callback());
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return { issuer, provider, close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }) };
}

function b64u(x) { return Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url'); }

// The fake: /authorize redirects straight back with a code; /token answers
// mint(nonce) for it.
export async function startFakeIdp({ port, clientId }) {
  const issuer = `http://127.0.0.1:${port}`;
  const key = rsaKey('good');
  const other = rsaKey('good'); // same kid, another key: a forged signature
  const state = { mint: null, lastNonce: null, lastChallenge: null, tokenRequests: [] };
  const sign = (header, claims, k = key.privateKey) => {
    const input = `${b64u(header)}.${b64u(claims)}`;
    return `${input}.${createSign('RSA-SHA256').update(input).sign(k).toString('base64url')}`;
  };
  const now = () => Math.floor(Date.now() / 1000);
  const base = (nonce, extra = {}) => ({ iss: issuer, aud: clientId, sub: 'fake-sub-1', preferred_username: 'fakeuser', groups: ['ops'], nonce, iat: now(), exp: now() + 300, ...extra });
  const tokens = {
    good: (n) => sign({ alg: 'RS256', kid: 'good' }, base(n)),
    wrongAudience: (n) => sign({ alg: 'RS256', kid: 'good' }, base(n, { aud: 'someone-else' })),
    expired: (n) => sign({ alg: 'RS256', kid: 'good' }, base(n, { iat: now() - 7200, exp: now() - 3600 })),
    badSignature: (n) => sign({ alg: 'RS256', kid: 'good' }, base(n), other.privateKey),
    wrongIssuer: (n) => sign({ alg: 'RS256', kid: 'good' }, base(n, { iss: 'http://127.0.0.1:1/elsewhere' })),
    wrongNonce: () => sign({ alg: 'RS256', kid: 'good' }, base('not-the-nonce')),
    algNone: (n) => `${b64u({ alg: 'none' })}.${b64u(base(n))}.`,
    hs256WithPublicKey: (n) => {
      const input = `${b64u({ alg: 'HS256', kid: 'good' })}.${b64u(base(n))}`;
      const pem = key.publicKey.export({ type: 'spki', format: 'pem' });
      return `${input}.${createHmac('sha256', pem).update(input).digest('base64url')}`;
    },
    unknownKid: (n) => sign({ alg: 'RS256', kid: 'nope' }, base(n), other.privateKey),
    noRole: (n) => sign({ alg: 'RS256', kid: 'good' }, base(n, { groups: ['nobody'] })),
  };
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, issuer);
    if (u.pathname === '/.well-known/openid-configuration') {
      res.setHeader('Content-Type', 'application/json');
      return res.end(JSON.stringify({ issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks`, id_token_signing_alg_values_supported: ['RS256'] }));
    }
    if (u.pathname === '/jwks') {
      res.setHeader('Content-Type', 'application/json');
      return res.end(JSON.stringify({ keys: [key.publicJwk] }));
    }
    if (u.pathname === '/authorize') {
      state.lastNonce = u.searchParams.get('nonce');
      state.lastChallenge = { challenge: u.searchParams.get('code_challenge'), method: u.searchParams.get('code_challenge_method') };
      res.statusCode = 302;
      res.setHeader('Location', `${u.searchParams.get('redirect_uri')}?code=c0de&state=${encodeURIComponent(u.searchParams.get('state'))}`);
      return res.end();
    }
    if (u.pathname === '/token') {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => {
        state.tokenRequests.push({ body: new URLSearchParams(body), authorization: req.headers.authorization });
        res.setHeader('Content-Type', 'application/json');
        res.end(JSON.stringify({ access_token: 'x', token_type: 'Bearer', id_token: tokens[state.mint](state.lastNonce) }));
      });
      return;
    }
    res.statusCode = 404;
    res.end();
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return { issuer, state, tokens, close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }) };
}
