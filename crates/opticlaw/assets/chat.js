// OptiClaw web chat. Sends with fetch() and the bearer token; reads the
// server-sent event stream with fetch() too (EventSource cannot send an
// Authorization header), parsing its `data:` lines here.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const log = $('log'), main = log.parentElement, input = $('text'), composer = $('composer');
  const tokenForm = $('tokenform'), tokenInput = $('token'), announcer = $('announcer');
  const fragment = new URLSearchParams(location.hash.slice(1));
  const query = new URLSearchParams(location.search);
  const pick = (k) => fragment.get(k) || query.get(k);
  const thread = pick('thread') || sessionStorage.getItem('opticlaw.thread') || 'main';
  let token = pick('token') || sessionStorage.getItem('opticlaw.token') || '';
  sessionStorage.setItem('opticlaw.thread', thread);
  if (pick('token')) {
    sessionStorage.setItem('opticlaw.token', token);
    // Keep the token out of the address bar and the history.
    history.replaceState(null, '', location.pathname);
  }

  // What this browser sent, so a reloaded page can show both sides.
  const sentKey = 'opticlaw.sent.' + thread;
  const sent = JSON.parse(localStorage.getItem(sentKey) || '{}');
  const shown = new Set();
  const remember = (id, text) => {
    sent[id] = text;
    const ids = Object.keys(sent);
    for (const old of ids.slice(0, Math.max(0, ids.length - 200))) delete sent[old];
    localStorage.setItem(sentKey, JSON.stringify(sent));
  };

  const state = $('state'), stateText = $('state-text');
  const setState = (s, text) => { state.dataset.state = s; stateText.textContent = text; };

  // Neutral markdown to DOM nodes: `code`, *bold*, _italic_, http(s) links.
  const INLINE = /`([^`\n]+)`|\*([^*\n]+)\*|(?<!\w)_([^_\n]+)_(?!\w)|(https?:\/\/[^\s<>"]*[^\s<>".,;:!?)'])/g;
  function render(el, text) {
    let at = 0;
    for (const m of text.matchAll(INLINE)) {
      el.append(text.slice(at, m.index));
      let node;
      if (m[1]) node = document.createElement('code');
      else if (m[2]) node = document.createElement('strong');
      else if (m[3]) node = document.createElement('em');
      else { node = document.createElement('a'); node.href = m[4]; node.rel = 'noopener noreferrer'; node.target = '_blank'; }
      node.textContent = m[1] || m[2] || m[3] || m[4];
      el.append(node);
      at = m.index + m[0].length;
    }
    el.append(text.slice(at));
  }

  const time = (d) => d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const WHO = { user: 'You', reply: 'OptiClaw', reminder: 'Reminder', notice: 'Notice' };

  function bubble(kind, text, when) {
    $('hint')?.remove();
    const stick = main.scrollHeight - main.scrollTop - main.clientHeight < 80;
    const li = document.createElement('li');
    li.className = 'msg ' + kind;
    li.dataset.kind = kind;
    const who = document.createElement('span');
    who.textContent = kind === 'reminder' ? 'Reminder' : WHO[kind] + ': ';
    who.className = kind === 'reminder' ? 'label' : 'sr-only';
    const body = document.createElement('div');
    body.className = 'body';
    // The label says it already: "⏰ Reminder: stretch" shows as "stretch".
    render(body, kind === 'reminder' ? text.replace(/^\W*reminder:\s*/i, '') : text);
    const meta = document.createElement('span');
    meta.className = 'meta';
    meta.textContent = time(when);
    li.append(who, body, meta);
    log.append(li);
    if (stick || kind === 'user') li.scrollIntoView({ block: 'end' });
    return li;
  }

  let lastSeq = 0, live = false;
  function onPacket(p) {
    if (typeof p.seq !== 'number' || p.seq <= lastSeq) return;
    lastSeq = p.seq;
    const asked = p.in_reply_to;
    if (asked && sent[asked] !== undefined && !shown.has(asked)) {
      shown.add(asked);
      bubble('user', sent[asked], new Date(p.created_at));
    }
    const kind = WHO[p.kind] && p.kind !== 'user' ? p.kind : 'reply';
    bubble(kind, p.text, new Date(p.created_at));
    if (live) announcer.textContent = WHO[kind] + ': ' + p.text;
  }

  const auth = () => ({ Authorization: 'Bearer ' + token });
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  let failures = 0, connecting = false;

  async function connect() {
    if (connecting) return;
    connecting = true;
    while (token) {
      setState('connecting', failures ? 'Reconnecting…' : 'Connecting…');
      try {
        const url = '/v1/local/stream?thread_id=' + encodeURIComponent(thread) + '&after=' + lastSeq;
        const res = await fetch(url, { headers: { ...auth(), Accept: 'text/event-stream' }, cache: 'no-store' });
        if (res.status === 401) { askToken('The token was refused.'); break; }
        if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
        failures = 0;
        setState('online', 'Connected');
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        setTimeout(() => { live = true; }, 300); // after the backlog, announce
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value.replace(/\r\n?/g, '\n');
          let end;
          while ((end = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            const data = block.split('\n').filter((l) => l.startsWith('data:'))
              .map((l) => l.slice(l[5] === ' ' ? 6 : 5)).join('\n');
            if (data) { try { onPacket(JSON.parse(data)); } catch (e) { console.warn('bad event', e); } }
          }
        }
      } catch (e) {
        console.warn('stream', e);
      }
      failures++;
      const wait = Math.min(15, 2 ** Math.min(failures - 1, 4));
      setState('connecting', 'Disconnected — retrying in ' + wait + ' s');
      await sleep(wait * 1000);
    }
    connecting = false;
  }

  function askToken(why) {
    setState('error', why);
    tokenForm.hidden = false;
    tokenInput.focus();
  }
  tokenForm.addEventListener('submit', (e) => {
    e.preventDefault();
    token = tokenInput.value.trim();
    sessionStorage.setItem('opticlaw.token', token);
    tokenInput.value = '';
    tokenForm.hidden = true;
    input.focus();
    connect();
  });

  const newId = () => 'web-' + (crypto.randomUUID ? crypto.randomUUID()
    : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join(''));

  async function post(li, id, text) {
    const meta = li.querySelector('.meta');
    li.classList.remove('failed');
    li.querySelector('button')?.remove();
    meta.textContent = time(new Date()) + ' · sending…';
    for (let attempt = 1; ; attempt++) {
      let res, error;
      try {
        res = await fetch('/v1/local/messages', {
          method: 'POST',
          headers: { ...auth(), 'Content-Type': 'application/json' },
          body: JSON.stringify({ text, thread_id: thread, event_id: id }),
        });
        if (res.ok) { meta.textContent = time(new Date()) + ' · sent'; return; }
        if (res.status === 401) askToken('The token was refused.');
        error = (await res.json().catch(() => null))?.error?.message || 'HTTP ' + res.status;
      } catch (e) {
        error = 'the daemon cannot be reached';
      }
      // Busy or unreachable: the same event id makes a retry safe.
      if ((!res || res.status === 429 || res.status === 503) && attempt < 5) {
        await sleep(1000 * (Number(res?.headers.get('Retry-After')) || attempt));
        continue;
      }
      li.classList.add('failed');
      meta.textContent = 'Not sent: ' + error;
      const retry = document.createElement('button');
      retry.type = 'button';
      retry.textContent = 'Retry';
      retry.addEventListener('click', () => post(li, id, text));
      meta.after(retry);
      return;
    }
  }

  function send() {
    const text = input.value.trim();
    if (!text) return;
    if (!token) { askToken('Enter the API token first.'); return; }
    const id = newId();
    remember(id, text);
    shown.add(id);
    input.value = '';
    grow();
    post(bubble('user', text, new Date()), id, text);
  }

  const grow = () => { input.style.height = 'auto'; input.style.height = input.scrollHeight + 2 + 'px'; };
  input.addEventListener('input', grow);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  composer.addEventListener('submit', (e) => { e.preventDefault(); send(); });

  if (token) { connect(); input.focus(); } else askToken('Token needed');
})();
