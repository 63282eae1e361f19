// Roles (users:admin): the built-in roles (read-only) and custom ones, each
// a set of the permissions the core offers (GET /api/v1/permissions, with
// what each allows); whether a role requires 2FA. The core validates and
// decides; this page only shows and sends.
import { api } from '../api.js';
import { h, clear, errorBox, badge, confirmDialog, toast } from '../ui.js';

export function render(root) {
  const err = h('div');
  const list = h('div', { id: 'role-list' });
  const editor = h('section', { class: 'card', id: 'role-editor' });
  clear(root, h('h1', {}, 'Roles'), err, list, editor);
  let catalog = [];

  async function load() {
    try {
      const [p, r] = await Promise.all([api('GET', '/api/v1/permissions'), api('GET', '/api/v1/roles')]);
      catalog = p.permissions;
      showList(r.roles);
      clear(err);
    } catch (e) { clear(err, errorBox(e)); }
  }

  function showList(roles) {
    clear(list, h('section', { class: 'card' },
      h('div', { class: 'row between' }, h('h2', {}, 'All roles'),
        h('button', { class: 'btn btn-primary', id: 'role-new', onclick: () => edit(null) }, 'New role')),
      h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Role'), h('th', {}, 'Permissions'), h('th', {}, 'Holders'), h('th', {}, '2FA'), h('th', {}, h('span', { class: 'sr-only' }, 'Actions')))),
        h('tbody', {}, roles.map((r) => h('tr', { dataset: { role: r.name } },
          h('td', {}, h('strong', {}, r.name), ' ', r.builtin ? badge('built-in', 'neutral') : null,
            r.description ? h('div', { class: 'muted' }, r.description) : null),
          h('td', {}, r.permissions.filter((x) => x !== 'authenticated' && x !== 'self:read').join(', ') || '—'),
          h('td', {}, r.builtin ? '—' : `${r.users} user(s), ${r.tokens} token(s)`),
          h('td', {}, h('label', { class: 'row' }, h('input', { type: 'checkbox', class: 'role-2fa', checked: Boolean(r.require_totp), onchange: (e) => policy(r.name, e.currentTarget.checked) }), 'required')),
          h('td', { class: 'actions' }, r.builtin ? null : [
            h('button', { class: 'btn btn-small', onclick: () => edit(r) }, 'Edit'),
            h('button', { class: 'btn btn-small btn-danger', onclick: () => remove(r) }, 'Delete')]))))))));
  }

  async function policy(name, on) {
    try { await api('PUT', `/api/v1/roles/${encodeURIComponent(name)}/policy`, { require_totp: on }); toast(`2FA ${on ? 'required' : 'no longer required'} for ${name}`); } catch (e) { clear(err, errorBox(e)); }
    load();
  }

  async function remove(r) {
    if (!(await confirmDialog(`Delete role ${r.name}?`, 'Only a role that no user or live token holds can be deleted.', 'Delete'))) return;
    try { await api('DELETE', `/api/v1/roles/${encodeURIComponent(r.name)}`); toast(`${r.name} deleted`); clear(editor); } catch (e) { clear(err, errorBox(e)); }
    load();
  }

  function edit(role) {
    const msg = h('div');
    const name = h('input', { id: 'role-name', required: true, maxlength: 32, pattern: '[a-z][a-z0-9_\\-]*', autocomplete: 'off', value: role?.name || '', disabled: Boolean(role) });
    const desc = h('input', { id: 'role-description', maxlength: 200, value: role?.description || '' });
    const held = new Set(role?.permissions || []);
    const boxes = catalog.map((p) => h('label', { class: 'perm-row', dataset: { perm: p.name } },
      h('input', { type: 'checkbox', name: 'perm', value: p.name, checked: held.has(p.name) }),
      h('span', {}, h('code', {}, p.name), ' — ', p.description || p.routes.join(', '),
        p.builtin_roles.length ? h('span', { class: 'muted' }, ` (${p.builtin_roles.join(', ')})`) : null)));
    const form = h('form', { id: 'role-form' },
      h('div', { class: 'inline-form' },
        h('div', { class: 'field' }, h('label', { for: 'role-name' }, 'Name'), name),
        h('div', { class: 'field grow' }, h('label', { for: 'role-description' }, 'Description'), desc)),
      h('fieldset', { class: 'perm-list' }, h('legend', {}, 'Permissions (every role may also log out, change its password and see itself)'), boxes),
      msg,
      h('div', { class: 'row end' },
        h('button', { class: 'btn', type: 'button', onclick: () => clear(editor) }, 'Cancel'),
        h('button', { class: 'btn btn-primary', type: 'submit' }, role ? 'Save' : 'Create role')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const permissions = [...form.querySelectorAll('input[name=perm]:checked')].map((x) => x.value);
      try {
        if (role) await api('PATCH', `/api/v1/roles/${encodeURIComponent(role.name)}`, { description: desc.value, permissions });
        else await api('POST', '/api/v1/roles', { name: name.value.trim(), description: desc.value, permissions });
        toast(`${role ? role.name : name.value.trim()} saved`);
        clear(editor);
        load();
      } catch (x) { clear(msg, errorBox(x)); }
    });
    clear(editor, h('h2', {}, role ? `Edit ${role.name}` : 'New role'), form);
    (role ? desc : name).focus();
  }

  load();
}
