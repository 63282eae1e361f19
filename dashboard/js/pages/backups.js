// Backups: plans with their last run, size, next run and last verified
// restore (Run now, Test restore, Edit: schedule, restore test, retention,
// paused), runs with
// live progress (topic job/<id>), and a repository's snapshots with a restore
// action that says what will be overwritten. Control-plane snapshots are
// restored with `serverbox-core restore`; the page says so. The core
// decides every outcome: this page only shows what it answers.
import { api } from '../api.js';
import { h, clear, errorBox, badge, fmtTime, fmtBytes, fmtDuration, confirmDialog, toast } from '../ui.js';
import { onEvent, subscribe } from '../live.js';
import { followJob } from '../jobs.js';

function statusBadge(status) {
  const kind = { succeeded: 'ok', failed: 'err', running: 'accent' }[status] || 'neutral';
  return badge(status || 'never run', kind);
}

function whatText(plan) {
  const w = plan.what || {};
  const parts = [];
  if (w.control_plane) parts.push('control plane');
  if (w.stack_id) parts.push(`stack ${w.stack_name || w.stack_id}${w.volumes ? ` (${w.volumes.join(', ')})` : ' volumes'}`);
  if (w.stack_id && plan.pause_services) parts.push('paused while read');
  return parts.join(' + ');
}

export function render(root, ctx) {
  const canWrite = ctx.can('backups:write');
  const canRestore = ctx.can('backups:restore');
  const err = h('div');
  const planRows = h('tbody', { id: 'backup-plan-rows' });
  const runRows = h('tbody', { id: 'backup-run-rows' });
  const snapRows = h('tbody', { id: 'backup-snapshot-rows' });
  const repoSelect = h('select', { id: 'backup-repo', 'aria-label': 'Repository' });
  const snapErr = h('div');
  const editor = h('div', { id: 'backup-plan-editor' });
  const progress = new Map(); // run (job) id -> {percent, step}
  const subs = new Map();
  let repos = [];
  let plans = [];
  let disposed = false;

  clear(root, h('h1', {}, 'Backups'), err,
    h('section', { class: 'card' }, h('h2', {}, 'Plans'),
      h('p', { class: 'muted small' }, 'Encrypted with restic. Each run ends with retention (restic forget --prune) and restic check.'),
      editor,
      h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Plan'), h('th', {}, 'What'), h('th', {}, 'Repository'), h('th', {}, 'Schedule'),
          h('th', {}, 'Last run'), h('th', {}, 'Size'), h('th', {}, 'Next run'), h('th', {}, 'Last verified restore'),
          h('th', {}, h('span', { class: 'sr-only' }, 'Actions')))),
        planRows))),
    h('section', { class: 'card' }, h('h2', {}, 'Runs'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Started'), h('th', {}, 'Plan'), h('th', {}, 'Trigger'), h('th', {}, 'Status'),
          h('th', {}, 'Size'), h('th', {}, 'Duration'), h('th', {}, 'Snapshots'))),
        runRows))),
    h('section', { class: 'card' }, h('div', { class: 'row between wrap' }, h('h2', {}, 'Snapshots'), repoSelect), snapErr,
      h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Time'), h('th', {}, 'Part'), h('th', {}, 'Volume'), h('th', {}, 'Node'), h('th', {}, 'Id'),
          h('th', {}, h('span', { class: 'sr-only' }, 'Actions')))),
        snapRows))));

  const planName = (id) => plans.find((p) => p.id === id)?.name || id;
  const repoName = (id) => repos.find((r) => r.id === id)?.name || id;

  function watch(runId) {
    if (subs.has(runId)) return;
    subs.set(runId, subscribe([`job/${runId}`], (m, type) => {
      if (type !== 'job.progress' || !m.data) return;
      progress.set(runId, { percent: m.data.percent, step: m.data.step });
      const cell = document.querySelector(`tr[data-run="${runId}"] .run-status`);
      if (cell) clear(cell, statusBadge('running'), ' ', progressLabel(runId));
    }));
  }
  function progressLabel(runId) {
    const p = progress.get(runId);
    if (!p) return h('span', { class: 'muted small run-progress' }, 'starting…');
    return h('span', { class: 'muted small run-progress' }, `${p.percent >= 0 ? `${p.percent}% · ` : ''}${p.step || ''}`);
  }

  async function runNow(plan, button) {
    button.disabled = true;
    try {
      const r = await api('POST', `/api/v1/backups/plans/${encodeURIComponent(plan.id)}/run`);
      toast(`Backup of ${plan.name} started`);
      watch(r.job.id);
      loadRuns();
      followJob(r.job).then((j) => { toast(`Backup of ${plan.name} ${j.state}`, j.state === 'succeeded' ? 'ok' : 'err'); load(); })
        .catch(() => {});
    } catch (e) { clear(err, errorBox(e)); } finally { button.disabled = false; }
  }

  async function testNow(plan, button) {
    button.disabled = true;
    try {
      const r = await api('POST', `/api/v1/backups/plans/${encodeURIComponent(plan.id)}/restore-test`);
      toast(`Restore test of ${plan.name} started`);
      const cell = document.querySelector(`tr[data-plan="${plan.id}"] .plan-verified`);
      if (cell) clear(cell, statusBadge('running'));
      followJob(r.job).then((j) => { toast(`Restore test of ${plan.name} ${j.state}`, j.state === 'succeeded' ? 'ok' : 'err'); load(); })
        .catch(() => {});
    } catch (e) { clear(err, errorBox(e)); } finally { button.disabled = false; }
  }

  function edit(plan) {
    const msg = h('div');
    const field = (id, label, input) => h('div', { class: 'field' }, h('label', { for: id }, label), input);
    const name = h('input', { id: 'plan-name', maxlength: 63, value: plan.name });
    const sched = h('input', { id: 'plan-schedule', placeholder: 'on demand', value: plan.schedule || '' });
    const rtest = h('input', { id: 'plan-restore-test', placeholder: 'only when asked', value: plan.restore_test || '' });
    const keep = Object.fromEntries(['daily', 'weekly', 'monthly'].map((k) => [k,
      h('input', { id: `plan-keep-${k}`, type: 'number', min: 0, max: 1000, value: (plan.retention || {})[k] ?? 0 })]));
    const paused = h('input', { id: 'plan-paused', type: 'checkbox', checked: !!plan.paused });
    const hasStack = !!(plan.what || {}).stack_id;
    const pauseSvc = h('input', { id: 'plan-pause-services', type: 'checkbox', checked: !!plan.pause_services });
    const form = h('form', { id: 'plan-form', 'aria-label': `Edit plan ${plan.name}` },
      h('div', { class: 'inline-form' },
        field('plan-name', 'Name', name),
        field('plan-schedule', 'Schedule (cron, UTC)', sched),
        field('plan-restore-test', 'Restore test (cron, UTC)', rtest),
        ...['daily', 'weekly', 'monthly'].map((k) => field(`plan-keep-${k}`, `Keep ${k}`, keep[k])),
        h('label', { class: 'field' }, paused, ' Paused (no scheduled run or test)'),
        hasStack ? h('label', { class: 'field' }, pauseSvc, " Pause the stack's containers while its volumes are read") : null),
      msg,
      h('div', { class: 'row end' },
        h('button', { class: 'btn', type: 'button', onclick: () => clear(editor) }, 'Cancel'),
        h('button', { class: 'btn btn-primary', type: 'submit' }, 'Save')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const retention = {};
      for (const k of ['daily', 'weekly', 'monthly']) if (Number(keep[k].value) > 0) retention[k] = Number(keep[k].value);
      try {
        await api('PATCH', `/api/v1/backups/plans/${encodeURIComponent(plan.id)}`, {
          name: name.value.trim(), schedule: sched.value.trim() || null, restore_test: rtest.value.trim() || null,
          retention, paused: paused.checked, ...(hasStack ? { pause_services: pauseSvc.checked } : {}),
        });
        toast(`${name.value.trim()} saved`);
        clear(editor);
        load();
      } catch (x) { clear(msg, errorBox(x)); }
    });
    clear(editor, h('h3', {}, `Edit ${plan.name}`), form);
    name.focus();
  }

  function verifiedCell(p) {
    const next = p.next_restore_test ? h('div', { class: 'muted small' }, `next ${fmtTime(p.next_restore_test)}`) : null;
    if (!p.last_verified_status) return [h('span', { class: 'muted' }, 'never tested'), next];
    return [statusBadge(p.last_verified_status), ' ', fmtTime(p.last_verified_at),
      p.last_verified_reason ? h('div', { class: 'small verified-reason' }, p.last_verified_reason) : null, next];
  }

  async function loadPlans() {
    const r = await api('GET', '/api/v1/backups/plans');
    plans = r.plans;
    clear(planRows, plans.length ? plans.map((p) => h('tr', { dataset: { plan: p.id } },
      h('td', {}, p.name),
      h('td', {}, whatText(p)),
      h('td', {}, repoName(p.repository_id)),
      h('td', { class: 'plan-schedule' }, p.schedule ? h('code', {}, p.schedule) : h('span', { class: 'muted' }, 'on demand'),
        p.paused ? [' ', badge('paused', 'neutral')] : null),
      h('td', { class: 'nowrap plan-last' }, statusBadge(p.last_status), ' ', p.last_finished_at ? fmtTime(p.last_finished_at) : ''),
      h('td', { class: 'nowrap plan-size' }, p.last_bytes ? fmtBytes(p.last_bytes) : '—'),
      h('td', { class: 'nowrap' }, p.next_run ? fmtTime(p.next_run) : '—'),
      h('td', { class: 'plan-verified', dataset: { verified: p.last_verified_status || '' } }, ...verifiedCell(p)),
      h('td', { class: 'actions' }, canWrite ? [
        h('button', { class: 'btn btn-small run-now', type: 'button', onclick: (e) => runNow(p, e.currentTarget) }, 'Run now'), ' ',
        h('button', { class: 'btn btn-small test-restore', type: 'button', title: 'Restore the last run into a scratch database and scratch volumes and verify it', onclick: (e) => testNow(p, e.currentTarget) }, 'Test restore'), ' ',
        h('button', { class: 'btn btn-small edit-plan', type: 'button', onclick: () => edit(p) }, 'Edit'),
      ] : null)))
      : h('tr', {}, h('td', { colspan: 9, class: 'muted' }, 'No backup plans yet (POST /api/v1/backups/plans).')));
  }

  async function loadRuns() {
    const r = await api('GET', '/api/v1/backups/runs?limit=30');
    if (disposed) return;
    clear(runRows, r.runs.length ? r.runs.map((x) => {
      if (x.status === 'running') watch(x.id);
      return h('tr', { dataset: { run: x.id, status: x.status } },
        h('td', { class: 'nowrap' }, fmtTime(x.started_at)),
        h('td', {}, planName(x.plan_id)),
        h('td', {}, x.trigger),
        h('td', { class: 'run-status', title: x.reason || '' }, statusBadge(x.status), ' ',
          x.status === 'running' ? progressLabel(x.id) : x.reason ? h('span', { class: 'muted small' }, x.reason) : null,
          x.checked ? badge('checked', 'ok') : null),
        h('td', { class: 'nowrap' }, x.bytes ? fmtBytes(x.bytes) : '—'),
        h('td', { class: 'nowrap' }, x.duration_ms !== null && x.duration_ms !== undefined ? fmtDuration(x.duration_ms) || '0s' : '—'),
        h('td', {}, (x.snapshots || []).map((s) => h('code', { class: 'small', title: s.id }, `${s.part} ${s.id.slice(0, 8)} `))));
    }) : h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No runs yet.')));
  }

  async function restore(repo, s) {
    const target = s.volume;
    const ok = await confirmDialog('Restore this snapshot?',
      `Volume ${target} on node ${s.node_id} will be emptied and its whole content replaced by the snapshot of ${fmtTime(s.time)} (${s.short_id}). Anything written to it since then is lost. Stop the services that use it first if they must not see the change.`,
      `Overwrite ${target}`, true);
    if (!ok) return;
    try {
      const r = await api('POST', '/api/v1/backups/restore', { repository_id: repo, snapshot_id: s.id });
      toast(`Restoring ${target}…`);
      const j = await followJob(r.job);
      toast(j.state === 'succeeded' ? `${target} restored` : `Restore failed: ${j.error?.message || j.state}`, j.state === 'succeeded' ? 'ok' : 'err');
      const row = document.querySelector(`tr[data-snapshot="${s.id}"]`);
      if (row) row.dataset.restored = j.state;
    } catch (e) { clear(snapErr, errorBox(e)); }
  }

  async function loadSnapshots() {
    const repo = repoSelect.value;
    clear(snapErr);
    if (!repo) { clear(snapRows, h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No repository.'))); return; }
    clear(snapRows, h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'Reading the repository…')));
    try {
      const r = await api('GET', `/api/v1/backups/repositories/${encodeURIComponent(repo)}/snapshots`);
      if (disposed) return;
      const list = r.snapshots.slice().sort((a, b) => (a.time < b.time ? 1 : -1));
      clear(snapRows, list.length ? list.map((s) => h('tr', { dataset: { snapshot: s.id, part: s.part || '' } },
        h('td', { class: 'nowrap' }, fmtTime(s.time)),
        h('td', {}, s.part || '—'),
        h('td', {}, s.volume || '—'),
        h('td', {}, s.node_id || '—'),
        h('td', {}, h('code', { class: 'small', title: s.id }, s.short_id)),
        h('td', { class: 'actions' }, s.volume
          ? (canRestore ? h('button', { class: 'btn btn-small restore', type: 'button', onclick: () => restore(repo, s) }, 'Restore…') : null)
          : h('span', { class: 'muted small' }, s.part === 'checkpoint' ? `audit checkpoint, seq ${s.seq}` : 'serverbox-core restore')))) : h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No snapshots yet.')));
    } catch (e) { clear(snapErr, errorBox(e)); clear(snapRows); }
  }

  async function load() {
    try {
      const r = await api('GET', '/api/v1/backups/repositories');
      if (disposed) return;
      repos = r.repositories;
      const keep = repoSelect.value;
      clear(repoSelect, repos.map((x) => h('option', { value: x.id }, `${x.name} (${x.kind})`)));
      if (keep && repos.some((x) => x.id === keep)) repoSelect.value = keep;
      await loadPlans();
      await loadRuns();
    } catch (e) { clear(err, errorBox(e)); }
  }
  repoSelect.addEventListener('change', loadSnapshots);
  load().then(loadSnapshots);

  let t = null;
  const off = onEvent((e) => {
    if (typeof e.type === 'string' && e.type.startsWith('backup.')) {
      clearTimeout(t);
      t = setTimeout(() => { load(); if (e.type === 'backup.run_succeeded') loadSnapshots(); }, 300);
    }
  });
  return () => { disposed = true; off(); clearTimeout(t); for (const u of subs.values()) u(); };
}
