// Checkpoints off the box, over HTTP (issue #19): with --checkpoint-post-url
// every signed audit checkpoint the daemon stores is also POSTed there as
// JSON, retried while the receiver fails (a job), each attempt an event
// (backup.checkpoint_posted / backup.checkpoint_post_failed) that names the
// seq and the receiver's status, never the URL (it may hold a token). The
// receiver verifies what it got with the signature alone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createPublicKey, verify } from 'node:crypto';
import { createDatabase, startCore, waitFor } from './lib/harness.mjs';

const SECRET = 'tok-ckpt-5f1c9a';
let db, core, server, port;
const got = [];
let refuse = 2; // the first answers are 503: the job must retry

before(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      if (refuse > 0) {
        refuse--;
        res.writeHead(503).end('down');
        return;
      }
      got.push({ url: req.url, type: req.headers['content-type'], body: JSON.parse(body) });
      res.writeHead(204).end();
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  port = server.address().port;
  db = createDatabase('ckptpost');
  core = await startCore({ db, admin: true, env: {
    SERVERBOX_CHECKPOINT_POST_URL: `http://127.0.0.1:${port}/checkpoints?token=${SECRET}`,
    SERVERBOX_CHECKPOINT_INTERVAL: '1', SERVERBOX_JOB_RETRY_BASE_MS: '200' } });
});
after(async () => {
  try { await core?.stop(); } finally { server?.close(); }
});

function verifies(cp) {
  const message = `serverbox-checkpoint-v1\n${cp.seq}\n${cp.hash}\n${cp.signed_at}\n`;
  const key = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(cp.public_key, 'base64')]), format: 'der', type: 'spki' });
  return verify(null, Buffer.from(message), key, Buffer.from(cp.signature, 'base64'));
}

test('each stored checkpoint reaches the receiver, after it refused twice; signed, with the chain hash at its seq', async () => {
  await waitFor(() => got.length >= 1, { timeout: 30000, what: 'a checkpoint POST' });
  const first = got[0];
  assert.equal(first.type, 'application/json');
  assert.equal(first.url, `/checkpoints?token=${SECRET}`);
  assert.ok(verifies(first.body), 'the signature verifies');
  assert.equal(first.body.hash, db.sql(`SELECT encode(hash, 'hex') FROM events WHERE seq = ${Number(first.body.seq)}`));
  assert.equal(db.sql(`SELECT count(*) FROM checkpoints WHERE seq = ${Number(first.body.seq)}`), '1');
  const failed = Number(db.sql("SELECT count(*) FROM events WHERE type = 'backup.checkpoint_post_failed'"));
  assert.ok(failed >= 2, `${failed} refused attempts recorded`);
  assert.match(db.sql("SELECT body FROM events WHERE type = 'backup.checkpoint_post_failed' ORDER BY seq LIMIT 1"), /answered 503/);

  // A new event moves the head: the next checkpoint is posted too.
  const r = await core.request('POST', '/api/v1/annotations', { json: { message: 'after the first checkpoint' } });
  assert.equal(r.status, 201, r.text);
  const seq = Number(r.body.seq ?? db.sql("SELECT max(seq) FROM events WHERE type = 'annotation.created'"));
  await waitFor(() => got.some((g) => Number(g.body.seq) >= seq), { timeout: 30000, what: 'the checkpoint covering the annotation' });
  assert.ok(got.every((g) => verifies(g.body)));
  await waitFor(() => Number(db.sql("SELECT count(*) FROM events WHERE type = 'backup.checkpoint_posted'")) >= 2, { what: 'posted events' });
});

test('the URL and its token are in no event, job and log line', () => {
  assert.equal(db.sql(`SELECT count(*) FROM events WHERE body LIKE '%${SECRET}%' OR body LIKE '%127.0.0.1:${port}%'`), '0');
  assert.equal(db.sql(`SELECT count(*) FROM jobs WHERE args::text LIKE '%${SECRET}%'`), '0');
  assert.ok(!core.log().includes(SECRET), 'not in the log');
});
