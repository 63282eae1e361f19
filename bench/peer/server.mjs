// The peer in `make bench`: the seed's stack — Hono 4 on @hono/node-server
// with postgres.js — answering the same two read routes the core is measured
// on, the way the seed did: per request, a token lookup by its SHA-256 and
// one query, the rows serialized by JSON.stringify.
//
//   node bench/peer/server.mjs PORT PG_SOCKET_DIR PG_PORT DATABASE
import { createHash } from 'node:crypto';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import postgres from 'postgres';

const [port, socketDir, pgPort, database] = process.argv.slice(2);
const sql = postgres({ path: `${socketDir}/.s.PGSQL.${pgPort}`, database, username: 'serverbox', max: 10 });
const app = new Hono();

async function caller(c) {
  const auth = c.req.header('authorization') || '';
  if (!auth.startsWith('Bearer ')) return null;
  const hash = createHash('sha256').update(auth.slice(7)).digest('hex');
  const rows = await sql`SELECT user_id, labels FROM peer_tokens WHERE hash = ${hash} AND expires_at > now()`;
  return rows[0] || null;
}

app.get('/health/live', (c) => c.json({ status: 'ok' }));
app.get('/api/v1/nodes', async (c) => {
  if (!(await caller(c))) return c.json({ error: { code: 'unauthenticated' } }, 401);
  const items = await sql`SELECT id, name, host, port, ssh_user, labels, docker, host_key_fingerprint,
      key_type, public_key, status, status_reason, status_changed_at, created_at, updated_at
    FROM nodes ORDER BY name`;
  return c.json({ items });
});
app.get('/api/v1/audit', async (c) => {
  if (!(await caller(c))) return c.json({ error: { code: 'unauthenticated' } }, 401);
  const limit = Math.min(Number(c.req.query('limit') || 50), 500);
  const items = await sql`SELECT seq, stream, type, actor, data, hash, created_at
    FROM events ORDER BY seq DESC LIMIT ${limit}`;
  return c.json({ items });
});

serve({ fetch: app.fetch, port: Number(port), hostname: '127.0.0.1' });
