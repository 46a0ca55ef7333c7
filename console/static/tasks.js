// The task list: rows follow the tenant's event stream, and the bulk
// actions cancel a selection or retry every failed task of a type.
import { api, announce, confirmAction, setProgress, setStatus } from './common.js';

const rows = () => document.querySelectorAll('tr[data-task]');
const row = (id) => document.querySelector(`tr[data-task="${CSS.escape(id)}"]`);

async function refreshRow(id) {
  const tr = row(id);
  if (!tr) return;
  try {
    const t = await api('GET', '/tasks/' + encodeURIComponent(id));
    setStatus(tr.querySelector('[data-field=status]'), t.status);
    setProgress(tr, t.progress);
  } catch (e) { /* the task may be gone */ }
}

function follow() {
  const es = new EventSource('/console/api/events');
  let newTasks = 0;
  es.onmessage = (msg) => {
    let ev;
    try { ev = JSON.parse(msg.data); } catch { return; }
    if (!ev.taskId) return;
    if (row(ev.taskId)) {
      const tr = row(ev.taskId);
      setStatus(tr.querySelector('[data-field=status]'), ev.status);
      if (ev.eventType !== 'progress' || !refreshRow.pending) refreshRow(ev.taskId);
    } else if (ev.eventType === 'created') {
      newTasks++;
      const note = document.getElementById('new-tasks');
      note.hidden = false;
      note.querySelector('a').textContent = `${newTasks} new task${newTasks > 1 ? 's' : ''}: reload`;
      note.querySelector('a').href = location.href;
    }
  };
  es.addEventListener('resync', () => { es.close(); rows().forEach((tr) => refreshRow(tr.dataset.task)); setTimeout(follow, 500); });
}

function selection() {
  return [...document.querySelectorAll('input.select:checked')].map((c) => c.value);
}

function bulk() {
  const cancelBtn = document.getElementById('cancel-selected');
  document.addEventListener('change', (e) => {
    if (e.target.matches('input.select')) cancelBtn.disabled = selection().length === 0;
  });
  cancelBtn.addEventListener('click', async () => {
    const ids = selection();
    if (!ids.length || !(await confirmAction(`Cancel ${ids.length} selected task(s)?`))) return;
    let done = 0; const failed = [];
    for (const id of ids) {
      try { await api('POST', `/tasks/${encodeURIComponent(id)}/cancel`); done++; refreshRow(id); } catch (e) { failed.push(`${id.slice(0, 8)}: ${e.message}`); }
    }
    announce(`Cancelled ${done} of ${ids.length} task(s).${failed.length ? ' Not cancelled: ' + failed.join('; ') : ''}`);
  });
  document.getElementById('retry-failed').addEventListener('submit', async (e) => {
    e.preventDefault();
    const type = e.target.taskType.value.trim();
    if (!type) { e.target.taskType.setAttribute('aria-invalid', 'true'); return; }
    if (!(await confirmAction(`Retry every failed task of type "${type}"?`))) return;
    let done = 0; let cursor = '';
    const ids = [];
    for (;;) {
      const q = new URLSearchParams({ status: 'failed', taskType: type, pageSize: '100' });
      if (cursor) q.set('cursor', cursor);
      const page = await api('GET', '/tasks?' + q);
      ids.push(...page.tasks.map((t) => t.id));
      if (!page.nextCursor || page.tasks.length === 0) break;
      cursor = page.nextCursor;
    }
    const failed = [];
    for (const id of ids) {
      try { await api('POST', `/tasks/${encodeURIComponent(id)}/retry`); done++; refreshRow(id); } catch (err) { failed.push(err.message); }
    }
    announce(`Retried ${done} of ${ids.length} failed ${type} task(s).${failed.length ? ' ' + failed.length + ' refused.' : ''}`);
  });
}

follow();
bulk();
