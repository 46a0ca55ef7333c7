// The task page: the progress bar, fields and timeline follow the task's
// event stream, the logs follow by polling, and the actions confirm first.
import { api, announce, confirmAction, pct, setProgress, setStatus } from './common.js';

const root = document.getElementById('task');
const id = root.dataset.task;
const path = '/tasks/' + encodeURIComponent(id);
const text = (v) => (v === null || v === undefined ? '–' : String(v));
const when = (v) => (v ? v.replace(/\.\d+Z$/, 'Z').replace('T', ' ') : '–');

function show(t) {
  root.dataset.status = t.status;
  setStatus(root.querySelector('[data-field=status]'), t.status);
  setProgress(root, t.progress);
  const set = (f, v) => { const el = root.querySelector(`[data-field=${f}]`); if (el) el.textContent = v; };
  set('message', text(t.message));
  set('items', `${t.processedItems} of ${text(t.totalItems)}${t.totalItemsEstimated ? ' (estimated)' : ''} items, ${t.successItems} succeeded, ${t.failedItems} failed`);
  set('uploadStatus', t.uploadStatus);
  set('outputFileName', text(t.outputFileName));
  set('errorsFileName', text(t.errorsFileName));
  set('etaSeconds', t.etaSeconds === null ? '–' : t.etaSeconds + ' s');
  set('errorMessage', text(t.errorMessage));
  set('attempt', t.attempt);
  set('retryCount', `${t.retryCount} of ${t.maxRetries}`);
  set('cancelRequested', String(t.cancelRequested));
  set('leaseOwner', `${text(t.leaseOwner)} until ${when(t.leaseExpiresAt)}`);
  set('startedAt', when(t.startedAt));
  set('completedAt', when(t.completedAt));
  set('updatedAt', when(t.updatedAt));
  set('version', t.version);
  root.querySelector('[data-file=output]').hidden = !t.outputFileName;
  root.querySelector('[data-file=errors]').hidden = !t.errorsFileName && !t.failedItems;
  root.querySelector('[data-file=input]').hidden = t.uploadStatus !== 'uploaded';
}

async function refresh() {
  try { show(await api('GET', path)); } catch (e) { /* deleted or gone */ }
}

// stream is the event stream the page follows.
let stream = null;

function follow() {
  const list = document.getElementById('events');
  const last = list.querySelector('li:last-child');
  const es = new EventSource('/console/api' + path + '/events' + (last ? '?after=' + last.dataset.event : ''));
  stream = es;
  es.onmessage = (msg) => {
    let ev;
    try { ev = JSON.parse(msg.data); } catch { return; }
    if (list.querySelector(`[data-event="${ev.id}"]`)) return;
    const li = document.createElement('li');
    li.dataset.event = ev.id;
    const time = document.createElement('time'); time.textContent = when(ev.createdAt);
    const b = document.createElement('b'); b.textContent = ev.eventType;
    const code = document.createElement('code'); code.textContent = JSON.stringify(ev.eventData);
    li.append(time, ' ', b, ` → ${ev.status} `, code);
    list.append(li);
    refresh();
  };
  es.addEventListener('resync', () => { es.close(); refresh(); setTimeout(follow, 500); });
  // A finished task's stream ends with "end", with no event left to send
  // when the page was rendered after the last one: show the final state,
  // and stop following until a retry opens the task again.
  es.addEventListener('end', () => { es.close(); refresh(); });
}

async function followLogs() {
  const pre = document.getElementById('logs');
  const shown = () => pre.querySelectorAll('[data-log]').length;
  for (;;) {
    await new Promise((r) => setTimeout(r, 1500));
    const size = 1000;
    const page = Math.floor(shown() / size) + 1;
    try {
      const res = await api('GET', `${path}/logs?page=${page}&pageSize=${size}`);
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      for (const l of res.logs) {
        if (pre.querySelector(`[data-log="${l.id}"]`)) continue;
        const span = document.createElement('span');
        span.dataset.log = l.id;
        span.textContent = `${when(l.createdAt)} [${l.level}] ${l.message}\n`;
        pre.append(span);
      }
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    } catch (e) {
      if (e.status === 404) return;
    }
  }
}

const actions = {
  cancel: ['Cancel this task?', () => api('POST', path + '/cancel'), 'Cancelled.'],
  retry: ['Retry this task?', () => api('POST', path + '/retry'), 'Retried.'],
  delete: ['Delete this task, its logs, events and files? This cannot be undone.', () => api('DELETE', path), 'Deleted.'],
};

root.addEventListener('click', async (e) => {
  const name = e.target.dataset && e.target.dataset.action;
  if (!name) return;
  const [question, run, done] = actions[name];
  if (!(await confirmAction(question))) return;
  try {
    await run();
    announce(done);
    if (name === 'delete') { location.href = '/console/tasks'; return; }
    if (name === 'retry' && stream.readyState === EventSource.CLOSED) follow();
    refresh();
  } catch (err) {
    announce(`Not done: ${err.message}`);
    alertBox(err.message);
  }
});

function alertBox(message) {
  let p = document.getElementById('action-error');
  if (!p) {
    p = document.createElement('p');
    p.id = 'action-error'; p.className = 'error'; p.setAttribute('role', 'alert');
    root.querySelector('.actions').after(p);
  }
  p.textContent = message;
}

void pct;
follow();
followLogs();
