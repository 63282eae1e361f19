// Images, volumes and networks of one node's Docker engine (the node is
// picked on the page, ?node=<id>; "local" is this server's own engine).
// Every list is the engine's answer through the core; removing asks first,
// naming what goes; a pull is a job whose progress (step, percent, the
// engine's status lines) is shown until it ends. A node outside the
// caller's scope does not exist for the core (404), and the page says so.
import { api, qs, ApiError } from '../api.js';
import { h, clear, errorBox, fmtBytes, toast } from '../ui.js';
import { followJob } from '../jobs.js';
import { badge, confirmDialog, reloadOnEvent, emptyState } from '../widgets.js';

const short = (id) => String(id || '').replace(/^sha256:/, '').slice(0, 12);
const unixTime = (s) => (s ? new Date(Number(s) * 1000).toLocaleString(undefined, { year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit' }) : '—');
const isoTime = (s) => (s ? new Date(s).toLocaleString(undefined, { year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit' }) : '—');
const labelsText = (l) => Object.entries(l || {}).map(([k, v]) => `${k}=${v}`).join(', ');
const BUILTIN_NETWORKS = ['bridge', 'host', 'none'];

// The node picker: the registered nodes the caller sees, and this server's
// engine for callers not limited to node labels.
async function nodeOptions(ctx) {
  const out = [];
  if (ctx.can('nodes:read')) {
    try {
      const r = await api('GET', '/api/v1/nodes');
      for (const n of r.items || []) out.push({ id: n.id, label: n.name || n.id, local: n.docker === 'local' });
    } catch { /* the picker still offers what it can */ }
  }
  if (!ctx.me.node_labels && !out.some((n) => n.local)) out.push({ id: 'local', label: 'this server (local engine)' });
  return out;
}

// One page: kind = 'image' | 'volume' | 'network'.
function page(kind) {
  const K = {
    image: { title: 'Images', list: 'images', read: 'images:read', write: 'images:pull', del: 'images:delete' },
    volume: { title: 'Volumes', list: 'volumes', read: 'volumes:read', write: 'volumes:write', del: 'volumes:delete' },
    network: { title: 'Networks', list: 'networks', read: 'networks:read', write: 'networks:write', del: 'networks:delete' },
  }[kind];
  return {
    render(root, ctx) {
      const canWrite = !ctx.readOnly && ctx.can(K.write);
      const canDelete = !ctx.readOnly && ctx.can(K.del);
      const params = new URLSearchParams(location.search);
      const picker = h('select', { id: 'engine-node', 'aria-label': 'Node' });
      const err = h('div', { id: 'engine-error' });
      const failures = h('div', { id: 'job-failures' });
      const count = h('p', { class: 'muted small', id: 'engine-count' }, '\u00a0');
      const tbody = h('tbody', { id: `${kind}-rows` });
      const heads = {
        image: ['Repository:tag', 'ID', 'Size', 'Created', 'Used by'],
        volume: ['Name', 'Driver', 'Labels', 'Created'],
        network: ['Name', 'Driver', 'Scope', 'Subnet', 'Containers'],
      }[kind];
      const table = h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, heads.map((t) => h('th', {}, t)), h('th', {}, h('span', { class: 'sr-only' }, 'Actions')))), tbody));
      const body = h('div', {}, table);
      const node = () => picker.value;
      const nodeName = () => picker.selectedOptions[0]?.textContent || node();

      const createCard = canWrite ? createForm() : null;
      const pruneBtn = canDelete ? h('button', { class: 'btn btn-danger', type: 'button', id: `${kind}-prune` },
        { image: 'Remove dangling images', volume: 'Remove unused volumes', network: 'Remove unused networks' }[kind]) : null;
      clear(root, h('h1', {}, K.title), err, failures,
        h('section', { class: 'card' }, h('div', { class: 'row wrap between' },
          h('div', { class: 'field' }, h('label', { for: 'engine-node' }, 'Node'), picker), pruneBtn)),
        createCard,
        h('section', { class: 'card' }, count, body));

      let usedBy = new Map();
      async function load() {
        if (!node()) return;
        try {
          const r = await api('GET', `/api/v1/nodes/${encodeURIComponent(node())}/${K.list}`);
          const items = r[K.list] || [];
          if (kind === 'image') {
            // Which containers use an image: from the node's containers.
            usedBy = new Map();
            try {
              const c = await api('GET', `/api/v1/nodes/${encodeURIComponent(node())}/containers`);
              for (const x of c.containers || []) usedBy.set(x.image, (usedBy.get(x.image) || 0) + 1);
            } catch { /* the count is a hint only */ }
          }
          count.textContent = `${items.length} ${kind}${items.length === 1 ? '' : 's'} on ${r.node_name || node()}`;
          clear(tbody, items.map(row));
          if (!table.isConnected) clear(body, table);
          clear(err);
        } catch (e) {
          clear(tbody);
          count.textContent = '\u00a0';
          if (e instanceof ApiError && e.status === 404) clear(body, emptyState('engine-missing', 'No such node', `There is no node "${node()}" you can see.`));
          else clear(err, errorBox(e));
        }
      }

      // An image reference is path-safe as it is ([A-Za-z0-9_.-/:@], checked by the core).
      function removeButton(what, ref, text) {
        if (!canDelete) return null;
        const b = h('button', { class: 'btn btn-small btn-danger', type: 'button' }, 'Remove');
        b.addEventListener('click', async () => {
          if (!(await confirmDialog(`Remove ${what}?`, text, 'Remove'))) return;
          b.disabled = true;
          b.textContent = 'Removing…';
          try {
            await api('DELETE', `/api/v1/nodes/${encodeURIComponent(node())}/${K.list}/${kind === 'image' ? ref : encodeURIComponent(ref)}`);
            toast(`${what} removed`);
          } catch (e) { clear(err, errorBox(e)); }
          live.reload();
        });
        return b;
      }

      function row(x) {
        if (kind === 'image') {
          const tags = (x.RepoTags || []).filter((t) => t !== '<none>:<none>');
          const name = tags[0] || `<untagged> ${short(x.Id)}`;
          const n = [x.Id, ...tags, ...tags.filter((t) => t.endsWith(':latest')).map((t) => t.slice(0, -7))].reduce((a, k) => a + (usedBy.get(k) || 0), 0);
          return h('tr', { dataset: { image: tags[0] || x.Id } },
            h('td', {}, tags.length ? tags.map((t) => h('div', {}, h('code', {}, t))) : h('span', { class: 'muted' }, '<untagged>')),
            h('td', {}, h('code', {}, short(x.Id))),
            h('td', { class: 'nowrap' }, fmtBytes(x.Size)),
            h('td', { class: 'nowrap' }, unixTime(x.Created)),
            h('td', {}, n ? `${n} container${n === 1 ? '' : 's'}` : h('span', { class: 'muted' }, 'none')),
            h('td', { class: 'actions' }, removeButton(`image ${name}`, tags[0] || x.Id,
              `This removes the image ${name} (${short(x.Id)}, ${fmtBytes(x.Size)}) from ${nodeName()}.${tags.length > 1 ? ` Only this tag goes; ${tags.length - 1} other tag${tags.length > 2 ? 's' : ''} keep the image.` : ''}${n ? ` ${n} container${n === 1 ? '' : 's'} use it: the engine refuses until they are removed.` : ''}`)));
        }
        if (kind === 'volume') {
          return h('tr', { dataset: { volume: x.Name } },
            h('td', {}, h('code', {}, x.Name)), h('td', {}, x.Driver), h('td', { class: 'small' }, labelsText(x.Labels) || '—'),
            h('td', { class: 'nowrap' }, isoTime(x.CreatedAt)),
            h('td', { class: 'actions' }, removeButton(`volume ${x.Name}`, x.Name,
              `This deletes the volume ${x.Name} on ${nodeName()} and all the data in it, for good. A volume a container uses is refused by the engine.`)));
        }
        const subnet = (x.IPAM?.Config || []).map((c) => c.Subnet).filter(Boolean).join(', ');
        const nc = Object.keys(x.Containers || {}).length;
        return h('tr', { dataset: { network: x.Name } },
          h('td', {}, h('code', {}, x.Name), x.Internal ? badge('internal', 'neutral') : null),
          h('td', {}, x.Driver), h('td', {}, x.Scope), h('td', {}, subnet ? h('code', {}, subnet) : '—'),
          h('td', {}, nc ? String(nc) : h('span', { class: 'muted' }, 'none')),
          h('td', { class: 'actions' }, BUILTIN_NETWORKS.includes(x.Name) ? h('span', { class: 'muted small' }, 'built in') : removeButton(`network ${x.Name}`, x.Id,
            `This removes the network ${x.Name} (${short(x.Id)}${subnet ? `, ${subnet}` : ''}) from ${nodeName()}.${nc ? ` ${nc} container${nc === 1 ? ' is' : 's are'} attached: the engine refuses until they leave it.` : ''}`)));
      }

      function createForm() {
        const formErr = h('div');
        if (kind === 'image') {
          const image = h('input', { id: 'pull-image', required: true, placeholder: 'registry.example/app', autocomplete: 'off' });
          const tag = h('input', { id: 'pull-tag', placeholder: 'latest', autocomplete: 'off' });
          const progress = h('div', { id: 'pull-progress', 'aria-live': 'polite' });
          const submit = h('button', { class: 'btn btn-primary', type: 'submit' }, 'Pull');
          const form = h('form', { class: 'inline-form', id: 'pull-form' },
            h('div', { class: 'field' }, h('label', { for: 'pull-image' }, 'Image'), image),
            h('div', { class: 'field' }, h('label', { for: 'pull-tag' }, 'Tag'), tag),
            h('div', { class: 'filter-actions' }, submit));
          form.addEventListener('submit', async (e) => {
            e.preventDefault();
            const ref = `${image.value.trim()}:${tag.value.trim() || 'latest'}`;
            const where = nodeName();
            submit.disabled = true;
            clear(formErr);
            const step = h('p', { class: 'small', id: 'pull-step' }, `Pulling ${ref} on ${where}… (queued)`);
            const lines = h('pre', { class: 'job-log', id: 'pull-log' });
            clear(progress, step, lines);
            try {
              const body = { image: image.value.trim() };
              if (tag.value.trim()) body.tag = tag.value.trim();
              const r = await api('POST', `/api/v1/nodes/${encodeURIComponent(node())}/images/pull`, body);
              const end = await followJob(r.job, (p) => {
                const pct = typeof p.percent === 'number' && p.percent >= 0 ? ` ${p.percent}%` : '';
                if (p.state === 'queued') step.textContent = `Pulling ${ref} on ${where}… (queued)`;
                else step.textContent = `Pulling ${ref} on ${where}… ${p.step || ''}${pct}`;
                if (p.lines) lines.textContent = p.lines.join('\n');
              });
              if (end.state === 'succeeded') {
                clear(progress, h('div', { class: 'alert alert-ok', id: 'pull-done', role: 'status' }, `Pulled ${ref} on ${where}${end.result?.status ? `: ${end.result.status}` : ''}.`));
                form.reset();
              } else {
                const box = h('div', { class: 'alert alert-error', role: 'alert', id: 'pull-failed' },
                  h('span', {}, `Pulling ${ref} on ${where} ${end.state === 'cancelled' ? 'was cancelled' : 'failed'}: ${end.error?.message || end.state}`), ' ',
                  h('button', { class: 'btn btn-small', type: 'button', onclick: () => box.remove() }, 'Dismiss'));
                clear(progress);
                failures.append(box);
              }
            } catch (e2) { clear(progress); clear(formErr, errorBox(e2)); } finally { submit.disabled = false; live.reload(); }
          });
          return h('section', { class: 'card' }, h('h2', {}, 'Pull an image'), formErr, form, progress);
        }
        const name = h('input', { id: `${kind}-name`, required: true, maxlength: 128, autocomplete: 'off' });
        const driver = kind === 'network' ? h('select', { id: 'network-driver' }, ['bridge', 'overlay', 'macvlan'].map((d) => h('option', { value: d }, d))) : null;
        const form = h('form', { class: 'inline-form', id: `${kind}-form` },
          h('div', { class: 'field' }, h('label', { for: name.id }, 'Name'), name),
          driver ? h('div', { class: 'field' }, h('label', { for: 'network-driver' }, 'Driver'), driver) : null,
          h('div', { class: 'filter-actions' }, h('button', { class: 'btn btn-primary', type: 'submit' }, `Create ${kind}`)));
        form.addEventListener('submit', async (e) => {
          e.preventDefault();
          try {
            const body = { name: name.value.trim() };
            if (driver) body.driver = driver.value;
            await api('POST', `/api/v1/nodes/${encodeURIComponent(node())}/${K.list}`, body);
            toast(`${kind} ${body.name} created`);
            form.reset();
            clear(formErr);
          } catch (e2) { clear(formErr, errorBox(e2)); }
          live.reload();
        });
        return h('section', { class: 'card' }, h('h2', {}, `New ${kind}`), formErr, form);
      }

      if (pruneBtn) {
        pruneBtn.addEventListener('click', async () => {
          const text = {
            image: `This removes every dangling image (untagged, used by no container) from ${nodeName()}.`,
            volume: `This deletes every volume on ${nodeName()} that no container uses, with its data, for good.`,
            network: `This removes every network on ${nodeName()} that no container uses (the built-in ones stay).`,
          }[kind];
          if (!(await confirmDialog(pruneBtn.textContent, text, 'Remove'))) return;
          pruneBtn.disabled = true;
          try {
            const r = await api('POST', `/api/v1/nodes/${encodeURIComponent(node())}/${K.list}/prune`);
            const gone = (r?.ImagesDeleted || r?.VolumesDeleted || r?.NetworksDeleted || []).length;
            toast(`${gone} removed${r?.SpaceReclaimed ? `, ${fmtBytes(r.SpaceReclaimed)} reclaimed` : ''}`);
          } catch (e) { clear(err, errorBox(e)); } finally { pruneBtn.disabled = false; }
          live.reload();
        });
      }

      const live = reloadOnEvent(load, (e) => typeof e.type === 'string' && e.type.startsWith(`${kind}.`));
      picker.addEventListener('change', () => {
        history.replaceState(null, '', `${location.pathname}${qs({ node: node() })}`);
        live.reload();
      });
      (async () => {
        const opts = await nodeOptions(ctx);
        const want = params.get('node');
        if (want && !opts.some((o) => o.id === want)) opts.unshift({ id: want, label: want });
        clear(picker, opts.map((o) => h('option', { value: o.id, selected: o.id === want }, o.label)));
        if (!opts.length) { clear(body, emptyState('engine-missing', 'No nodes', 'Add a node first: its engine\'s objects are listed here.')); return; }
        live.reload();
      })();
      return () => live.off();
    },
  };
}

export const images = page('image');
export const volumes = page('volume');
export const networks = page('network');
