// The queues page refreshes its figures every five seconds.
async function refresh() {
  try {
    const res = await fetch(location.href, { credentials: 'same-origin' });
    if (!res.ok) return;
    const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
    const fresh = doc.getElementById('queues');
    if (fresh) document.getElementById('queues').replaceWith(fresh);
  } catch { /* try again later */ }
}
setInterval(refresh, 5000);
