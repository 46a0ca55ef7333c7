// The new-task form: checked before it is sent, then the input file goes
// from the browser straight to the pre-signed URL, with its progress. An
// upload that fails leaves the task waiting for its file and says what to
// check; submitting again retries the upload.
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

/** UploadError is why an upload did not arrive, in words an operator can act on. */
class UploadError extends Error {}

function upload(created, file) {
  const store = new URL(created.uploadUrl, location.href).origin;
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
    xhr.addEventListener('load', () => (xhr.status >= 200 && xhr.status < 300 ? resolve()
      : reject(new UploadError(`The file store refused the upload (${xhr.status}): ${xhr.responseText.slice(0, 300)}`))));
    // A browser tells a script nothing of why a request failed: a CORS
    // refusal, a blocked connection and an unreachable host look the same.
    // Only a store of another origin (S3) needs a CORS rule.
    const advice = store === location.origin ? 'Check the connection to the service.'
      : `An operator should check that the bucket's CORS rule allows PUT from ${location.origin} ` +
        `(COMMONOPS_S3_CORS_ORIGINS; see the README's Console section) and that the file store is reachable from here.`;
    xhr.addEventListener('error', () => reject(new UploadError(
      `The browser could not send the file to ${store} (refused or unreachable). ${advice}`)));
    xhr.send(file);
  });
}

const submit = form.querySelector('button[type=submit]');
const formError = document.getElementById('n-form-error');

// awaiting is the task created by the last submit whose upload failed, and
// the file it was for: submitting again with that file retries the upload
// to the same URL (while it lasts) rather than create another task.
let awaiting = null;

function forget() {
  awaiting = null;
  submit.textContent = 'Create';
}
form.addEventListener('input', forget);
form.addEventListener('change', forget);

/** uploadFailed says what went wrong and that the task waits for its file. */
function uploadFailed(created, file, err) {
  awaiting = { created, file };
  const link = document.createElement('a');
  link.href = '/console/tasks/' + encodeURIComponent(created.task.id);
  link.textContent = created.task.id;
  formError.replaceChildren(`${err.message} Task `, link,
    ' was created and waits for its file: retry the upload, or open the task to cancel it.');
  barText.textContent = `${bar.value}%: not uploaded`;
  submit.textContent = 'Retry the upload';
}

form.addEventListener('submit', async (e) => {
  e.preventDefault();
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
  submit.disabled = true;
  let created = null;
  try {
    const retry = awaiting && file === awaiting.file && Date.now() < Date.parse(awaiting.created.uploadExpiresAt);
    created = retry ? awaiting.created : await api('POST', '/tasks', body);
    if (file && created.uploadUrl) {
      bar.value = 0; barText.textContent = '0%';
      await upload(created, file);
      bar.value = 100; barText.textContent = '100%: uploaded';
      try { await api('POST', `/tasks/${encodeURIComponent(created.task.id)}/upload-complete`); } catch (err) { if (err.status !== 409) throw err; }
    }
    announce('Created.');
    location.href = '/console/tasks/' + encodeURIComponent(created.task.id);
  } catch (err) {
    formError.hidden = false;
    submit.disabled = false;
    if (err instanceof UploadError) { uploadFailed(created, file, err); return; }
    const fields = (err.problem && err.problem.errors) || [];
    for (const fe of fields) {
      const input = f[fe.field];
      if (input && input.getAttribute('aria-describedby')) problem(input, fe.message);
    }
    formError.textContent = err.message;
  }
});
