// What a guest sees first: what the link grants (each granted page, linked)
// and until when.
import { h, clear, fmtTime, badge } from '../ui.js';
import { GUEST_SCOPES, scopeLabel } from '../widgets.js';

export function render(root, ctx) {
  const g = ctx.guest;
  const pages = GUEST_SCOPES.filter((s) => s.page && g.scopes.includes(s.scope));
  clear(root,
    h('h1', {}, 'Shared view'),
    h('section', { class: 'card' },
      h('p', {}, 'This is a read-only view of a Serverbox installation, shared with you through a time-limited link.'),
      h('dl', { class: 'kv' },
        h('dt', {}, 'Shared as'), h('dd', {}, ctx.me.name || '—'),
        h('dt', {}, 'Grants'), h('dd', { id: 'guest-scopes' }, g.scopes.map((s) => badge(scopeLabel(s), 'accent'))),
        h('dt', {}, 'Expires'), h('dd', {}, fmtTime(new Date(g.expiresAt).toISOString()))),
      pages.length
        ? h('div', {}, h('p', {}, 'Pages this link opens:'),
          h('ul', { id: 'guest-pages' }, pages.map((p) => h('li', {}, h('a', { href: `${g.base}${p.page}`, 'data-nav': '', class: 'link' }, p.label)))))
        : null,
      h('p', { class: 'muted small' }, 'Nothing can be changed through this link. Every page you open through it is recorded in the audit log.')));
}
