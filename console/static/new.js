// The new-task form: checked before it is sent, then the input file goes
// from the browser straight to the pre-signed URL, with its progress.
import { api, announce } from './common.js';

const form = document.getElementById('new-task');
const bar = document.getElementById('n-upload');
const barText = document.getElementById('n-upload-text');

function problem(input, message) {
  const p = document.getElementById(input.getAttribute('aria-describedby'));
  input.setAttribute('aria-invalid', message ? 'true' : 'false');
  p.hidden = !message;
  p.textContent = message || '';
  return !message;
}

const nameRe = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;

function check() {
  const f = form.elements;
  let ok = true; let first = null;
  const v = (input, message) => { if (!problem(input, message)) { ok = false; first = first || input; } };
  const name = (input, what) => {
    const s = input.value.trim();
    if (!s) return `${what} is required`;
    if (s.length > 64) return `${what} must be at most 64 characters`;
    if (!nameRe.test(s)) return `${what} may hold letters, digits and . _ : - only`;
    return '';
  };
  v(f.taskType, name(f.taskType, 'The task type'));
  v(f.entityType, name(f.entityType, 'The entity type'));
  const int = (input, lo, hi, what) => {
    const n = Number(input.value);
    return Number.isInteger(n) && n >= lo && n <= hi ? '' : `${what} must be a whole number from ${lo} to ${hi}`;
  };
  v(f.priority, int(f.priority, -1000, 1000, 'The priority'));
  v(f.maxRetries, int(f.maxRetries, 0, 100, 'Max retries'));
  let params = null;
  try {
    params = JSON.parse(f.params.value || '{}');
    v(f.params, params && typeof params === 'object' && !Array.isArray(params) ? '' : 'Params must be a JSON object');
  } catch (e) {
    v(f.params, 'Params are not valid JSON: ' + e.message);
  }
  if (first) first.focus();
  return ok ? { params } : null;
}

function upload(created, file) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(created.uploadMethod || 'PUT', created.uploadUrl);
    for (const [k, v] of Object.entries(created.uploadHeaders || {})) xhr.setRequestHeader(k, v);
    xhr.upload.addEventListener('progress', (e) => {
      if (!e.lengthComputable) return;
      const p = Math.round((e.loaded / e.total) * 100);
      bar.value = p; bar.textContent = p + '%';
      barText.textContent = `${p}% (${e.loaded} of ${e.total} bytes)`;
    });
    xhr.addEventListener('load', () => (xhr.status >= 200 && xhr.status < 300 ? resolve() : reject(new Error(`the upload was refused (${xhr.status}): ${xhr.responseText}`))));
    xhr.addEventListener('error', () => reject(new Error('the upload failed')));
    xhr.send(file);
  });
}

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  const formError = document.getElementById('n-form-error');
  formError.hidden = true;
  const ok = check();
  if (!ok) { announce('The form has problems; see the fields marked.'); return; }
  const f = form.elements;
  const file = f.file.files[0];
  const body = {
    taskType: f.taskType.value.trim(), entityType: f.entityType.value.trim(),
    priority: Number(f.priority.value), maxRetries: Number(f.maxRetries.value), params: ok.params,
  };
  if (file) Object.assign(body, { fileName: file.name, fileSize: file.size, contentType: file.type || 'application/octet-stream' });
  const submit = form.querySelector('button[type=submit]');
  submit.disabled = true;
  try {
    const created = await api('POST', '/tasks', body);
    if (file && created.uploadUrl) {
      await upload(created, file);
      bar.value = 100; barText.textContent = '100%: uploaded';
      try { await api('POST', `/tasks/${encodeURIComponent(created.task.id)}/upload-complete`); } catch (err) { if (err.status !== 409) throw err; }
    }
    announce('Created.');
    location.href = '/console/tasks/' + encodeURIComponent(created.task.id);
  } catch (err) {
    const fields = (err.problem && err.problem.errors) || [];
    for (const fe of fields) {
      const input = f[fe.field];
      if (input && input.getAttribute('aria-describedby')) problem(input, fe.message);
    }
    formError.hidden = false;
    formError.textContent = err.message;
    submit.disabled = false;
  }
});
