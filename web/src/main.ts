import './styles.css';
import { Auth, AuthError, Connectivity } from './auth';
import { Jmap } from './jmap';
import { h, clear } from './dom';
import { MailApp } from './app';

const net = new Connectivity();
const auth = new Auth(localStorage, net);
const root = document.getElementById('root') as HTMLElement;

function applyTheme() {
  const pref = localStorage.getItem('bulwark.theme') ?? 'system';
  const dark = pref === 'dark' || (pref === 'system' && matchMedia('(prefers-color-scheme: dark)').matches);
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
}
applyTheme();
matchMedia('(prefers-color-scheme: dark)').addEventListener('change', applyTheme);
window.addEventListener('bulwark-theme', applyTheme);

if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch(() => {});
}

function showLogin(message = '') {
  document.title = 'Sign in · Bulwark';
  let needCode = false;
  const error = h('p.error', { role: 'alert', 'aria-live': 'assertive' }, message);
  const user = h('input', { type: 'email', name: 'username', autocomplete: 'username', required: true, id: 'login-user' }) as HTMLInputElement;
  const pass = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true, id: 'login-pass' }) as HTMLInputElement;
  const code = h('input', { type: 'text', name: 'totp', inputmode: 'numeric', autocomplete: 'one-time-code', id: 'login-code' }) as HTMLInputElement;
  const codeLabel = h('label', { hidden: true }, 'Authentication code', code, h('small.muted', null, 'From your authenticator app, or a recovery code'));
  const submit = h('button.btn.primary', { type: 'submit' }, 'Sign in') as HTMLButtonElement;
  const form = h(
    'form',
    {
      'aria-labelledby': 'login-title',
      onsubmit: async (ev: Event) => {
        ev.preventDefault();
        submit.disabled = true;
        error.textContent = '';
        try {
          await auth.login(user.value, pass.value, needCode ? code.value : undefined);
          start();
        } catch (e) {
          if (e instanceof AuthError && e.code === 'totp_required') {
            needCode = true;
            codeLabel.hidden = false;
            code.focus();
            error.textContent = '';
          } else {
            error.textContent = e instanceof Error ? e.message : String(e);
            if (needCode) code.select();
          }
        } finally {
          submit.disabled = false;
        }
      },
    },
    h('h1#login-title', null, h('span.brand-mark', { 'aria-hidden': 'true' }), 'Bulwark mail'),
    h('p.muted', { style: 'margin:0' }, 'Sign in to your mailbox'),
    h('label', null, 'Email address', user),
    h('label', null, 'Password', pass),
    codeLabel,
    error,
    submit,
  );
  clear(root, h('main.login', null, form));
  user.focus();
}

function start() {
  if (!auth.signedIn) return showLogin();
  const jmap = new Jmap(auth, localStorage);
  const app = new MailApp(root, auth, jmap, net);
  auth.onSignedOut = () => {
    app.destroy();
    showLogin('Your session has ended. Please sign in again.');
  };
  void app.start();
}

start();
