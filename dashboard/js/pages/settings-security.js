// Settings › Security: the caller's own two-factor authentication (TOTP).
// Enrollment shows the secret the core made as a QR code (drawn here from
// the otpauth:// URI with the vendored qrcode-generator, as SVG through the
// DOM: no markup from strings) and as text, then takes a code from the app;
// the core answers the recovery codes once. Every decision is the core's.
import { api } from '../api.js';
import { h, clear, errorBox, fmtTime, badge, copyText } from '../ui.js';

const SVG = 'http://www.w3.org/2000/svg';

// The QR code of `text` as an <svg> of one path, 4 modules of quiet zone.
export async function qrSvg(text, size = 200) {
  const { default: qrcode } = await import('../../vendor/qrcode.js');
  const qr = qrcode(0, 'M');
  qr.addData(text);
  qr.make();
  const n = qr.getModuleCount();
  const q = 4;
  let d = '';
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) if (qr.isDark(r, c)) d += `M${c + q} ${r + q}h1v1h-1z`;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${n + 2 * q} ${n + 2 * q}`);
  svg.setAttribute('width', String(size));
  svg.setAttribute('height', String(size));
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'QR code of the 2FA secret');
  svg.setAttribute('shape-rendering', 'crispEdges');
  const bg = document.createElementNS(SVG, 'rect');
  bg.setAttribute('width', '100%');
  bg.setAttribute('height', '100%');
  bg.setAttribute('fill', '#fff');
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', d);
  path.setAttribute('fill', '#000');
  svg.append(bg, path);
  svg.classList.add('qr');
  return svg;
}

export function render(root, ctx) {
  const err = h('div');
  const body = h('div', { id: 'totp-section' });
  clear(root, h('h1', {}, 'Security'), err,
    ctx.me.totp_setup_required
      ? h('div', { class: 'alert alert-warn', id: 'totp-required', role: 'alert' }, 'Your role requires two-factor authentication. Set it up to use the rest of the dashboard.')
      : null,
    h('section', { class: 'card' }, h('h2', {}, 'Two-factor authentication'), body));

  async function load() {
    clear(err);
    let st;
    try { st = await api('GET', '/api/v1/auth/totp'); } catch (e) { clear(err, errorBox(e)); return; }
    if (st.enabled) return showEnabled(st);
    const start = h('button', { class: 'btn btn-primary', id: 'totp-start', onclick: begin }, st.pending ? 'Start again' : 'Set up 2FA');
    clear(body,
      h('p', {}, badge('off', 'warn'), ' Protect your account with a code from an authenticator app (TOTP) on top of your password.'),
      st.required ? h('p', { class: 'muted' }, 'Your role requires it.') : null, start);
  }

  function showEnabled(st, codes) {
    const disableCode = h('input', { id: 'totp-disable-code', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: 6, pattern: '[0-9]{6}', placeholder: '123456' });
    const msg = h('div');
    const off = h('form', { class: 'inline-form', id: 'totp-disable' },
      h('div', { class: 'field narrow' }, h('label', { for: 'totp-disable-code' }, 'Code'), disableCode),
      h('div', { class: 'filter-actions' }, h('button', { class: 'btn btn-danger', type: 'submit' }, 'Turn off 2FA')));
    off.addEventListener('submit', async (e) => {
      e.preventDefault();
      try { await api('POST', '/api/v1/auth/totp/disable', { code: disableCode.value.trim() }); load(); } catch (x) { clear(msg, errorBox(x)); }
    });
    clear(body,
      h('p', { id: 'totp-on' }, badge('on', 'ok'), ` Since ${fmtTime(st.confirmed_at)}. Recovery codes left: `, h('strong', { id: 'totp-codes-left' }, String(st.recovery_codes_left))),
      codes ? recoveryBox(codes) : null,
      st.required ? h('p', { class: 'muted' }, 'Your role requires 2FA: an admin can reset it if you lose your device.') : h('div', {}, msg, off));
  }

  function recoveryBox(codes) {
    const text = codes.join('\n');
    return h('div', { class: 'alert alert-ok', id: 'totp-recovery' },
      h('h3', {}, 'Recovery codes'),
      h('p', {}, 'Each works once instead of a code. Keep them somewhere safe: they are not shown again.'),
      h('pre', { id: 'totp-recovery-codes' }, text),
      h('button', { class: 'btn btn-small', type: 'button', onclick: (e) => copyText(text, e.currentTarget) }, 'Copy'));
  }

  async function begin() {
    clear(err);
    let b;
    try { b = await api('POST', '/api/v1/auth/totp'); } catch (e) { clear(err, errorBox(e)); return; }
    const code = h('input', { id: 'totp-code', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: 6, pattern: '[0-9]{6}', required: true, placeholder: '123456' });
    const msg = h('div');
    const form = h('form', { class: 'inline-form', id: 'totp-confirm' },
      h('div', { class: 'field narrow' }, h('label', { for: 'totp-code' }, 'Code from the app'), code),
      h('div', { class: 'filter-actions' }, h('button', { class: 'btn btn-primary', type: 'submit' }, 'Confirm')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clear(msg);
      try {
        const r = await api('POST', '/api/v1/auth/totp/confirm', { code: code.value.trim() });
        if (ctx.me.totp_setup_required) {
          // The session may do more now: the shell asks /me again.
          ctx.me.totp_setup_required = false;
          ctx.refresh?.();
        }
        showEnabled(r, r.recovery_codes);
      } catch (x) { clear(msg, errorBox(x)); code.select(); }
    });
    clear(body,
      h('ol', {},
        h('li', {}, 'Scan this code with an authenticator app, or enter the secret by hand.'),
        h('li', {}, 'Type the 6-digit code the app shows.')),
      h('div', { class: 'row' }, await qrSvg(b.otpauth_uri),
        h('div', {},
          h('p', {}, 'Secret: ', h('code', { id: 'totp-secret' }, b.secret)),
          h('p', { class: 'muted' }, `${b.algorithm}, ${b.digits} digits, every ${b.period} s`),
          h('p', {}, h('a', { href: b.otpauth_uri, id: 'totp-uri' }, 'Open in an authenticator app')))),
      msg, form);
    code.focus();
  }

  load();
}
