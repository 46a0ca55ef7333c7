// Shared helpers of the console's pages: API calls through the console's
// proxy (as the logged-in user), confirmation dialogs and announcements.

/** api calls the task API at path through the console and returns its JSON; a problem throws an Error with its detail. */
export async function api(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch('/console/api' + path, init);
  if (res.status === 401) {
    location.href = '/console/login?next=' + encodeURIComponent(location.pathname + location.search);
    throw new Error('log in again');
  }
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const err = new Error((data && (data.detail || data.title)) || res.statusText);
    err.status = res.status;
    err.problem = data;
    throw err;
  }
  return data;
}

/** confirmAction shows the confirmation dialog and resolves to true when confirmed. */
export function confirmAction(message) {
  const dlg = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = message;
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
    dlg.returnValue = '';
    dlg.showModal();
    document.getElementById('confirm-ok').focus();
  });
}

/** announce tells screen readers (and the page's live region) what happened. */
export function announce(message) {
  document.getElementById('live').textContent = message;
}

/** pct formats a progress like the server does. */
export function pct(p) {
  return String(Math.round(p * 10) / 10);
}

/** setStatus updates a status badge. */
export function setStatus(el, status) {
  if (!el) return;
  el.textContent = status;
  el.className = 'badge s-' + status;
}

/** setProgress updates a progress bar and its text. */
export function setProgress(root, p) {
  const bar = root.querySelector('[data-field=progress]');
  const text = root.querySelector('[data-field=progressText]');
  if (bar) { bar.value = p; bar.textContent = pct(p) + '%'; }
  if (text) text.textContent = pct(p) + '%';
}
