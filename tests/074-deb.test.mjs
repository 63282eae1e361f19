// make deb: the two packages build with dpkg-deb, hold what they should
// (root-owned, the hardened units pointing at the packaged binaries, the
// settings file a conffile, the collector static), and their maintainer
// scripts parse (sh -n), make the system user, and remove data on purge
// only. Nothing is installed on this machine: `dpkg -i`/`dpkg -P` are not run
// here (see README, "Production").
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir } from './lib/harness.mjs';

const OUT = join(ROOT, 'build', 'deb');
let debs = {};
before(() => {
  const r = spawnSync(join(ROOT, 'scripts', 'make-deb.sh'), { cwd: ROOT, encoding: 'utf8', env: { ...process.env, SERVERBOX_DEB_VERSION: '1.2.3+test' } });
  assert.equal(r.status, 0, r.stderr);
  for (const f of readdirSync(OUT)) debs[f.split('_')[0]] = join(OUT, f);
});

const contents = (deb) => execFileSync('dpkg-deb', ['-c', deb], { encoding: 'utf8' }).trim().split('\n')
  .map((l) => { const p = l.split(/\s+/); return { mode: p[0], owner: p[1], path: p.slice(5).join(' ').replace(/^\./, '') }; });
const field = (deb, f) => execFileSync('dpkg-deb', ['-f', deb, f], { encoding: 'utf8' }).trim();
function extract(deb) {
  const d = tempDir('sbx-deb-');
  execFileSync('dpkg-deb', ['-R', deb, d]);
  return d;
}

test('both packages are built with the version given', () => {
  assert.deepEqual(Object.keys(debs).sort(), ['serverbox-collector', 'serverbox-core']);
  for (const d of Object.values(debs)) {
    assert.equal(field(d, 'Version'), '1.2.3+test');
    assert.match(field(d, 'Depends'), /adduser/);
  }
  assert.match(field(debs['serverbox-core'], 'Depends'), /libpq5/);
});

test('serverbox-core: binary, unit, dashboard, settings as a conffile; every file root-owned', () => {
  const c = contents(debs['serverbox-core']);
  const paths = new Map(c.map((e) => [e.path, e]));
  assert.equal(paths.get('/usr/bin/serverbox-core').mode, '-rwxr-xr-x');
  assert.ok(paths.has('/lib/systemd/system/serverbox-core.service'));
  assert.ok(paths.has('/usr/share/serverbox/dashboard/index.html'));
  assert.equal(paths.get('/etc/serverbox/core.env').mode, '-rw-r-----');
  assert.ok(c.every((e) => e.owner === 'root/root'), 'root-owned');
  assert.ok(!c.some((e) => /\/\.[^/]+$/.test(e.path)), 'no dotfiles');
  const info = execFileSync('dpkg-deb', ['-I', debs['serverbox-core']], { encoding: 'utf8' });
  for (const s of ['conffiles', 'postinst', 'prerm', 'postrm']) assert.match(info, new RegExp(`\\s${s}\\b`));
  const d = extract(debs['serverbox-core']);
  assert.equal(readFileSync(join(d, 'DEBIAN/conffiles'), 'utf8').trim(), '/etc/serverbox/core.env');
  assert.equal(readFileSync(join(d, 'lib/systemd/system/serverbox-core.service'), 'utf8'),
    readFileSync(join(ROOT, 'packaging/systemd/serverbox-core.service'), 'utf8'));
});

test('serverbox-collector: the static binary and its unit pointing at /usr/bin', () => {
  const c = contents(debs['serverbox-collector']);
  assert.deepEqual(c.filter((e) => !e.mode.startsWith('d')).map((e) => e.path).sort(),
    ['/lib/systemd/system/serverbox-collector.service', '/usr/bin/serverbox-collector']);
  const d = extract(debs['serverbox-collector']);
  const file = execFileSync('file', ['-b', join(d, 'usr/bin/serverbox-collector')], { encoding: 'utf8' });
  assert.match(file, /statically linked/);
  const unit = readFileSync(join(d, 'lib/systemd/system/serverbox-collector.service'), 'utf8');
  assert.match(unit, /^ExecStart=\/usr\/bin\/serverbox-collector run$/m);
  assert.doesNotMatch(unit.split('\n').filter((l) => !l.startsWith('#')).join('\n'), /\/usr\/local\/bin/);
  // The packaged unit verifies, pointed at the extracted binary.
  const u = join(d, 'serverbox-collector.service');
  writeFileSync(u, unit.replace('/usr/bin/serverbox-collector', join(d, 'usr/bin/serverbox-collector')));
  const v = spawnSync('systemd-analyze', ['verify', u], { encoding: 'utf8' });
  assert.equal(v.status, 0, v.stderr);
});

test('maintainer scripts parse, make the system user, and remove data on purge only', () => {
  for (const [pkg, user, data] of [['serverbox-core', 'serverbox', '/var/lib/serverbox'], ['serverbox-collector', 'serverbox-collector', '/var/lib/serverbox-collector']]) {
    const d = extract(debs[pkg]);
    for (const s of ['postinst', 'prerm', 'postrm']) {
      const p = join(d, 'DEBIAN', s);
      const n = spawnSync('sh', ['-n', p], { encoding: 'utf8' });
      assert.equal(n.status, 0, `${pkg} ${s}: ${n.stderr}`);
      assert.match(readFileSync(p, 'utf8'), /^#!\/bin\/sh\nset -e|^#!\/bin\/sh\n(#.*\n)+set -e\n/m, `${pkg} ${s} uses set -e`);
    }
    const postinst = readFileSync(join(d, 'DEBIAN/postinst'), 'utf8');
    assert.match(postinst, new RegExp(`adduser --system --group --home ${data} .*${user}|adduser --system --group --home ${data}[^\\n]*\\\\\\n[^\\n]*${user}`));
    assert.match(postinst, /\[ -d \/run\/systemd\/system \]/, 'systemctl only under systemd');
    const postrm = readFileSync(join(d, 'DEBIAN/postrm'), 'utf8');
    const purge = postrm.slice(postrm.indexOf('purge)'), postrm.indexOf(';;'));
    assert.ok(purge.includes(`rm -rf ${data}`), `${pkg}: purge removes ${data}`);
    assert.equal(postrm.split(`rm -rf ${data}`).length, 2, `${pkg}: data removed in one place only (purge)`);
    assert.ok(!readFileSync(join(d, 'DEBIAN/prerm'), 'utf8').includes('rm '), `${pkg}: prerm removes nothing`);
  }
});
