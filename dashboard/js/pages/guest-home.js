// What a guest sees first: what the link grants and until when.
import { h, clear, fmtTime, badge } from '../ui.js';

const LABELS = {
  'view:metrics': 'Node metrics', 'view:containers': 'Containers', 'view:logs': 'Container logs',
  'view:deployments': 'Deployments', 'view:audit': 'Audit log', 'view:stacks': 'Stacks',
  'view:recordings': 'Terminal recordings',
};

export function render(root, ctx) {
  const g = ctx.guest;
  clear(root,
    h('h1', {}, 'Shared view'),
    h('section', { class: 'card' },
      h('p', {}, 'This is a read-only view of a Serverbox installation, shared with you through a time-limited link.'),
      h('dl', { class: 'kv' },
        h('dt', {}, 'Shared as'), h('dd', {}, ctx.me.name || '—'),
        h('dt', {}, 'Grants'), h('dd', { id: 'guest-scopes' }, g.scopes.map((s) => badge(LABELS[s] || s, 'accent'))),
        h('dt', {}, 'Expires'), h('dd', {}, fmtTime(new Date(g.expiresAt).toISOString()))),
      h('p', { class: 'muted small' }, 'Every page you open through this link is recorded in the audit log. Pages for metrics, containers, logs and deployments appear here once this server offers them.')));
}
