// The Flowline browser console (docs/console.md). Built only on the server's public HTTP and SSE API.
// No inline script or style (the Content-Security-Policy forbids them): the DOM is built with
// createElement/textContent, and styles come from console.css and the libraries' CSSOM.
'use strict';
(() => {
  const TOKEN_KEY = 'flowline.token';
  const SCOPES = { read: 0, control: 1, admin: 2 };
  const COMMAND_SCOPE = { build: 'admin', shutdown: 'admin', start: 'control', pause: 'control', resume: 'control', stop: 'control', restart: 'control' };
  const HISTORY = 60;

  let token = sessionStorage.getItem(TOKEN_KEY);
  let scope = 'read';
  let tokenPrompt = null;
  const state = { health: null, info: null, status: null, graph: null, metrics: {}, history: {}, failures: {}, kinds: null, selfPid: null };

  // ---- small helpers --------------------------------------------------------------------------
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const fmt = (v, digits = 1) => (v === null || v === undefined || Number.isNaN(v)) ? '–' : (typeof v === 'number' ? v.toFixed(digits) : String(v));
  const hasScope = need => SCOPES[scope] >= SCOPES[need];
  function setResult(node, text, isError) { node.textContent = text; node.classList.toggle('error', !!isError); }
  function detailOf(reply) { return reply.json && (reply.json.detail || reply.json.error) ? (reply.json.detail || reply.json.error) : `HTTP ${reply.status}`; }

  // ---- HTTP with the bearer token ---------------------------------------------------------------
  function headers(extra) {
    const h = Object.assign({ Accept: 'application/json' }, extra || {});
    if (token) h.Authorization = 'Bearer ' + token;
    return h;
  }

  async function api(method, path, body, contentType) {
    const h = headers();
    let payload;
    if (body !== undefined) {
      h['Content-Type'] = contentType || 'application/json';
      payload = contentType ? body : JSON.stringify(body);
    }
    const response = await fetch(path, { method, headers: h, body: payload, cache: 'no-store' });
    const text = await response.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = null; }
    if (response.status === 401) {
      await askToken(json && json.detail);
      return api(method, path, body, contentType);
    }
    return { status: response.status, ok: response.ok, json, text, response };
  }

  function askToken(why) {
    if (tokenPrompt) return tokenPrompt;
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    const dialog = $('#token-dialog');
    $('#token-why').textContent = why || '';
    $('#token-input').value = '';
    tokenPrompt = new Promise(resolve => {
      const done = () => {
        const value = $('#token-input').value.trim();
        if (!value) { dialog.showModal(); return; }
        token = value;
        sessionStorage.setItem(TOKEN_KEY, value);
        dialog.removeEventListener('close', done);
        tokenPrompt = null;
        resolve();
      };
      dialog.addEventListener('close', done);
    });
    dialog.showModal();
    return tokenPrompt;
  }

  // ---- server-sent events over fetch (EventSource cannot send the Authorization header) ----------
  const handlers = {};
  function on(type, fn) { (handlers[type] = handlers[type] || []).push(fn); }
  function dispatch(type, data, id) {
    for (const fn of (handlers[type] || [])) { try { fn(data, type, id); } catch (e) { console.error(e); } }
    for (const fn of (handlers['*'] || [])) { try { fn(data, type, id); } catch (e) { console.error(e); } }
  }

  // Reads a text/event-stream response to its end, calling onEvent(type, parsed data or null, id) per event.
  async function readSse(response, onEvent) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let type = 'message', id = null;
        const data = [];
        for (const line of block.split('\n')) {
          if (line === '' || line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event') type = text; else if (field === 'data') data.push(text); else if (field === 'id') id = text;
        }
        if (data.length) {
          let parsed = null;
          try { parsed = JSON.parse(data.join('\n')); } catch { parsed = data.join('\n'); }
          onEvent(type, parsed, id);
        } else if (id !== null) onEvent(type, null, id);
      }
    }
  }

  async function runEvents() {
    let lastId = null;
    for (;;) {
      try {
        const h = headers({ Accept: 'text/event-stream' });
        if (lastId !== null) h['Last-Event-ID'] = lastId;
        const response = await fetch('/events', { headers: h, cache: 'no-store' });
        if (response.status === 401) { await askToken('the event stream needs a token'); continue; }
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        setConnection('live');
        await readSse(response, (type, data, id) => { if (id !== null) lastId = id; if (data !== null) dispatch(type, data, id); });
      } catch (e) {
        console.warn('event stream:', e);
      }
      setConnection('reconnecting');
      await sleep(1000);
    }
  }
  function setConnection(text) { $('#connection').textContent = text === 'live' ? '● live' : '○ ' + text; }

  // ---- tabs -------------------------------------------------------------------------------------
  const tabOpened = {};
  function showTab(name) {
    for (const b of $$('#tabs button')) b.classList.toggle('active', b.dataset.tab === name);
    for (const s of $$('main > section.tab')) s.hidden = s.id !== 'tab-' + name;
    location.hash = name;
    if (name !== 'settings' && settingsFeed) { settingsFeed.abort(); settingsFeed = null; }
    if (tabOpened[name]) tabOpened[name]();
  }

  // ---- control: state, commands, document, servers ---------------------------------------------
  // The state and the commands it allows (from the server's state machine) are in /info.
  async function refreshHealth() {
    const r = await api('GET', '/info');
    if (!r.ok) return;
    state.health = r.json;
    const badge = $('#state');
    badge.textContent = r.json.state;
    badge.className = 'state ' + r.json.state;
    applyPermissions();
  }

  function applyPermissions() {
    const allowed = (state.health && state.health.allowed_commands) || [];
    for (const b of $$('#commands button')) {
      const cmd = b.dataset.command;
      b.disabled = !allowed.includes(cmd) || !hasScope(COMMAND_SCOPE[cmd]);
      b.title = !hasScope(COMMAND_SCOPE[cmd]) ? `needs the ${COMMAND_SCOPE[cmd]} scope` : (!allowed.includes(cmd) ? `not allowed while ${state.health && state.health.state}` : '');
    }
    for (const b of $$('[data-needs]')) {
      if (b.id === 'doc-apply' || b.id === 'tables-apply') continue;
      b.disabled = !hasScope(b.dataset.needs) || b.dataset.self === 'true';
    }
    $('#scope').textContent = `scope: ${scope}`;
    updateApplyButtons();
  }

  async function command(cmd) {
    const out = $('#command-result');
    setResult(out, `${cmd}…`);
    for (const b of $$('#commands button')) b.disabled = true;
    const r = await api('POST', '/commands/' + cmd, cmd === 'shutdown' || cmd === 'stop' ? {} : undefined);
    setResult(out, r.ok ? `${cmd}: done (${r.json && r.json.state ? r.json.state : 'ok'})` : `${cmd} failed: ${detailOf(r)}`, !r.ok);
    if (r.ok && r.json && r.json.workers) applyStatus(r.json);
    await refreshHealth();
  }

  async function refreshInfo() {
    const r = await api('GET', '/info');
    if (!r.ok) return;
    state.info = r.json;
    $('#doc-path').textContent = r.json.config_path || '(document given over HTTP)';
    $('#server-url').textContent = location.origin;
    const patterns = $('#synthetic-pattern');
    patterns.replaceChildren(...(r.json.synthetic_patterns || []).map(p => el('option', { value: p, text: p })));
  }

  async function refreshServers() {
    const r = await api('GET', '/servers');
    const body = $('#servers tbody');
    if (!r.ok) { body.replaceChildren(el('tr', {}, el('td', { colspan: 5, text: detailOf(r) }))); return; }
    state.selfPid = r.json.self_pid;
    body.replaceChildren(...r.json.servers.map(s => {
      const self = s.pid === r.json.self_pid;
      const kill = el('button', { 'data-needs': 'admin', 'data-pid': s.pid, 'data-self': self ? 'true' : null, text: 'Kill', disabled: self || !hasScope('admin'), title: self ? 'this server' : null, onclick: () => killServer(s) });
      return el('tr', { 'data-pid': s.pid },
        el('td', { text: s.pid }),
        el('td', {}, self ? el('span', { text: s.url + ' (this one)' }) : el('a', { href: s.url + '/', text: s.url })),
        el('td', { text: s.token_required ? 'required' : 'none' }),
        el('td', { text: s.config_path || '' }),
        el('td', {}, kill));
    }));
    if (r.json.servers.length === 0) body.append(el('tr', {}, el('td', { colspan: 5, text: 'no local servers registered' })));
  }

  async function killServer(s) {
    const out = $('#servers-result');
    setResult(out, `stopping the server at ${s.url}…`);
    const r = await api('DELETE', '/servers/' + s.pid);
    setResult(out, r.ok ? `stopped the server at ${s.url} (pid ${s.pid})` : `kill failed: ${detailOf(r)}`, !r.ok);
    await refreshServers();
  }

  async function launchServer(ev) {
    ev.preventDefault();
    const out = $('#servers-result');
    const body = { path: $('#launch-path').value.trim() };
    if ($('#launch-ns').value.trim()) body.namespace = $('#launch-ns').value.trim();
    setResult(out, 'launching…');
    const r = await api('POST', '/servers', body);
    setResult(out, r.ok ? `launched ${r.json.url} (pid ${r.json.pid})` : `launch failed: ${detailOf(r)}`, !r.ok);
    await refreshServers();
  }

  async function loadDocument(ev) {
    ev.preventDefault();
    const r = await api('POST', '/document/load', { path: $('#load-path').value.trim() });
    setResult($('#command-result'), r.ok ? `loaded ${r.json.config_path} (revision ${r.json.revision})` : `load failed: ${detailOf(r)}`, !r.ok);
  }

  // ---- document: YAML editor ----------------------------------------------------------------
  let editor = null, serverYaml = '', lastCheck = null, checkSeq = 0;
  function setupEditor() {
    editor = CodeMirror.fromTextArea($('#yaml'), {
      mode: 'yaml', lineNumbers: true, indentUnit: 2, viewportMargin: Infinity, tabSize: 2, extraKeys: { Tab: cm => cm.replaceSelection('  ') },
      gutters: ['CodeMirror-lint-markers'],
      lint: { getAnnotations: lintYaml, async: true, delay: 250 },
    });
    editor.setOption('readOnly', false);
  }

  function lintYaml(text, update) {
    const seq = ++checkSeq;
    api('POST', '/document/yaml/validate', text, 'application/yaml').then(r => {
      if (seq !== checkSeq) return;
      const list = $('#yaml-errors');
      const marks = [];
      for (let i = 0; i < editor.lineCount(); i++) editor.removeLineClass(i, 'wrap', 'line-error');
      if (!r.ok) {
        lastCheck = null;
        list.replaceChildren(el('li', { text: detailOf(r) }));
        update([]);
        updateApplyButtons();
        return;
      }
      lastCheck = Object.assign({ text }, r.json);
      list.replaceChildren(...r.json.errors.map(e => el('li', { 'data-line': e.line || '', text: e.text })));
      for (const e of r.json.errors) {
        const line = Math.max(0, Math.min((e.line || 1) - 1, editor.lineCount() - 1));
        const column = Math.max(0, (e.column || 1) - 1);
        editor.addLineClass(line, 'wrap', 'line-error');
        marks.push({ from: CodeMirror.Pos(line, column), to: CodeMirror.Pos(line, column + 1), message: e.text, severity: 'error' });
      }
      setResult($('#doc-status'), r.json.valid ? (text === serverYaml ? 'valid; same as the server\'s' : 'valid; not applied yet') : `${r.json.error_count} problem(s)`, !r.json.valid);
      update(marks);
      updateApplyButtons();
    }).catch(e => { setResult($('#doc-status'), 'validation failed: ' + e, true); update([]); });
  }

  function updateApplyButtons() {
    const apply = $('#doc-apply');
    if (apply) apply.disabled = !(hasScope('admin') && lastCheck && lastCheck.valid && editor && lastCheck.text === editor.getValue() && lastCheck.text !== serverYaml);
    const tables = $('#tables-apply');
    if (tables) tables.disabled = !(hasScope('admin') && tableCheck && tableCheck.valid && tableDirty);
  }

  async function refreshYaml(force) {
    const response = await fetch('/document/yaml', { headers: headers({ Accept: 'application/yaml' }), cache: 'no-store' });
    if (response.status === 401) { await askToken(); return refreshYaml(force); }
    if (!response.ok) return;
    const text = await response.text();
    const dirty = editor && editor.getValue() !== serverYaml;
    serverYaml = text;
    // "text": the document's own YAML, comments and all; "generated": written from a document given as JSON.
    $('#yaml').dataset.source = response.headers.get('X-Document-Source') || '';
    if (editor && (force || !dirty)) editor.setValue(text);
    updateApplyButtons();
  }

  // The text itself is applied (as application/yaml), so that the server keeps it with its comments.
  async function applyYaml() {
    if (!lastCheck || !lastCheck.valid) return;
    const r = await api('PUT', '/document', lastCheck.text, 'application/yaml');
    setResult($('#doc-status'), r.ok ? `applied: revision ${r.json.revision}` : `apply failed: ${detailOf(r)}`, !r.ok);
    if (r.ok) { serverYaml = ''; await refreshYaml(true); }
  }

  function saveYaml() {
    const blob = new Blob([editor.getValue()], { type: 'application/yaml' });
    const a = el('a', { href: URL.createObjectURL(blob), download: (state.info && state.info.config_path ? state.info.config_path.split('/').pop() : 'pipeline.yaml') });
    document.body.append(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }

  // ---- document: tables with dialogs from the kinds' parameter descriptions ----------------------
  let tableDoc = null, tableCheck = null, tableDirty = false;
  const SECTIONS = [
    { key: 'shared_memory', title: 'Streams', kinds: null },
    { key: 'sources', title: 'Sources', kinds: 'sources' },
    { key: 'kernels', title: 'Kernels', kinds: 'kernels' },
    { key: 'sinks', title: 'Sinks', kinds: 'sinks' },
  ];

  async function refreshTables() {
    const [doc, kinds] = await Promise.all([api('GET', '/document'), state.kinds ? null : api('GET', '/kinds')]);
    if (kinds && kinds.ok) state.kinds = kinds.json;
    if (!doc.ok) return;
    tableDoc = doc.json.document;
    tableDirty = false;
    tableCheck = { valid: true, errors: [] };
    renderTables();
  }

  function summary(section, item) {
    if (section.key === 'shared_memory') return `[${(item.shape || []).join(', ')}] ${item.dtype || ''}`;
    const io = ['input', 'inputs', 'stream', 'streams', 'output', 'outputs', 'auxiliary'].filter(k => item[k] !== undefined && String(item[k]) !== '').map(k => `${k}: ${Array.isArray(item[k]) ? item[k].join(', ') : item[k]}`);
    return io.join('; ');
  }

  function renderTables() {
    const root = $('#doc-tables');
    const errors = (tableCheck && tableCheck.errors) || [];
    const parts = [el('div', { class: 'row' },
      el('button', { id: 'tables-apply', 'data-needs': 'admin', text: 'Apply tables (PUT /document)', disabled: true, onclick: applyTables }),
      el('button', { text: 'Reload', onclick: refreshTables }))];
    for (const section of SECTIONS) {
      const items = tableDoc[section.key] || [];
      const rows = items.map((item, i) => {
        const path = `${section.key}[${i}]`;
        const bad = errors.some(e => e.includes(path) || e.includes(`${section.key}.${item.name}`) || e.includes(`'${item.name}'`));
        return el('tr', { class: bad ? 'bad' : null, 'data-name': item.name },
          el('td', { text: item.name }),
          el('td', { text: item.kind || '' }),
          el('td', { text: summary(section, item) }),
          el('td', { text: item.parameters ? JSON.stringify(item.parameters) : (item.operation || '') }),
          el('td', {}, el('button', { text: 'Edit', onclick: () => editEntry(section, i) }), el('button', { text: 'Remove', onclick: () => { items.splice(i, 1); changedTables(); } })));
      });
      parts.push(el('h3', {}, section.title + ' ', el('button', { text: 'Add', onclick: () => editEntry(section, -1) })));
      parts.push(el('table', { class: 'grid', id: 'table-' + section.key }, el('thead', {}, el('tr', {}, ['name', 'kind', 'streams', 'parameters', ''].map(h => el('th', { text: h })))), el('tbody', {}, rows)));
    }
    parts.push(el('ul', { class: 'errors', id: 'table-errors' }, errors.map(e => el('li', { text: e }))));
    root.replaceChildren(...parts);
    updateApplyButtons();
  }

  async function changedTables() {
    tableDirty = true;
    const r = await api('POST', '/document/validate', tableDoc);
    tableCheck = r.ok ? r.json : { valid: false, errors: [detailOf(r)] };
    renderTables();
  }

  async function applyTables() {
    const r = await api('PUT', '/document', tableDoc);
    setResult($('#doc-status'), r.ok ? `applied: revision ${r.json.revision}` : `apply failed: ${detailOf(r)}`, !r.ok);
    if (r.ok) { tableDirty = false; await refreshTables(); await refreshYaml(true); }
  }

  function field(label, input, description) {
    return el('label', {}, label, ' ', input, description ? el('div', { class: 'desc', text: description }) : null);
  }
  const listText = v => Array.isArray(v) ? v.join(', ') : (v === undefined || v === null ? '' : String(v));
  const parseList = t => t.split(',').map(s => s.trim()).filter(Boolean);

  function editEntry(section, index) {
    const items = tableDoc[section.key] = tableDoc[section.key] || [];
    const item = index >= 0 ? JSON.parse(JSON.stringify(items[index])) : {};
    const dialog = $('#entry-dialog');
    $('#entry-title').textContent = `${index >= 0 ? 'Edit' : 'Add'} ${section.title.toLowerCase().replace(/s$/, '')}`;
    const fields = $('#entry-fields');
    const inputs = {};
    const name = inputs.name = el('input', { value: item.name || '', required: true, name: 'name' });
    const list = [field('name', name)];
    let paramBox = null;
    if (section.key === 'shared_memory') {
      inputs.shape = el('input', { value: listText(item.shape), name: 'shape', placeholder: '120, 120' });
      inputs.dtype = el('select', { name: 'dtype' }, ['float32', 'float64', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64', 'bool', 'complex64', 'complex128'].map(d => el('option', { value: d, text: d, selected: item.dtype === d })));
      list.push(field('shape', inputs.shape, 'sizes separated by commas'), field('dtype', inputs.dtype));
    } else {
      const defs = (state.kinds && state.kinds[section.kinds]) || [];
      inputs.kind = el('select', { name: 'kind' }, defs.map(d => el('option', { value: d.kind, text: d.kind, selected: item.kind === d.kind })));
      list.push(field('kind', inputs.kind));
      const ioKeys = section.key === 'kernels' ? ['input', 'output', 'auxiliary'] : section.key === 'sources' ? ['stream', 'auxiliary'] : ['stream', 'auxiliary'];
      for (const k of ioKeys) {
        const value = item[k] !== undefined ? item[k] : item[k + 's'];
        inputs[k] = el('input', { value: listText(value), name: k });
        list.push(field(k, inputs[k], k === 'auxiliary' ? 'stream names separated by commas' : null));
      }
      if (section.key === 'kernels') { inputs.operation = el('input', { value: item.operation || '', name: 'operation', size: 40 }); list.push(field('operation', inputs.operation, 'for kinds that take an operation')); }
      paramBox = el('fieldset', {}, el('legend', { text: 'parameters' }));
      const renderParams = () => {
        const def = defs.find(d => d.kind === inputs.kind.value);
        paramBox.replaceChildren(el('legend', { text: 'parameters' }));
        inputs.params = {};
        for (const p of (def ? def.parameters : [])) {
          const current = item.parameters && item.parameters[p.name] !== undefined ? item.parameters[p.name] : undefined;
          let input;
          if (p.type === 'bool' || p.type === 'boolean') input = el('input', { type: 'checkbox', checked: current === undefined ? p.default === 'true' : !!current, name: 'p-' + p.name });
          else input = el('input', { type: ['int', 'integer', 'float', 'number', 'double'].includes(p.type) ? 'number' : 'text', step: 'any', value: current === undefined ? '' : (typeof current === 'object' ? JSON.stringify(current) : current), placeholder: p.default !== null && p.default !== undefined ? `default ${p.default}` : (p.required ? 'required' : ''), required: p.required, name: 'p-' + p.name });
          inputs.params[p.name] = { input, p };
          paramBox.append(field(`${p.name} (${p.type})`, input, p.description));
        }
        if (def) paramBox.append(el('div', { class: 'desc', text: def.description }));
      };
      inputs.kind.addEventListener('change', renderParams);
      renderParams();
      list.push(paramBox);
    }
    fields.replaceChildren(...list);
    const close = () => {
      dialog.removeEventListener('close', close);
      if (dialog.returnValue !== 'ok') return;
      const out = { name: inputs.name.value.trim() };
      if (section.key === 'shared_memory') {
        Object.assign(out, item, { name: out.name, shape: parseList(inputs.shape.value).map(Number), dtype: inputs.dtype.value });
      } else {
        out.kind = inputs.kind.value;
        for (const k of ['input', 'output', 'stream']) if (inputs[k] && inputs[k].value.trim()) { const l = parseList(inputs[k].value); out[k] = l.length === 1 ? l[0] : l; }
        if (inputs.auxiliary && inputs.auxiliary.value.trim()) out.auxiliary = parseList(inputs.auxiliary.value);
        if (inputs.operation && inputs.operation.value.trim()) out.operation = inputs.operation.value.trim();
        const params = {};
        for (const [n, { input, p }] of Object.entries(inputs.params || {})) {
          if (input.type === 'checkbox') { if (input.checked !== (p.default === 'true')) params[n] = input.checked; continue; }
          if (input.value === '') continue;
          if (input.type === 'number') params[n] = Number(input.value);
          else { try { params[n] = /^[[{"]/.test(input.value) ? JSON.parse(input.value) : input.value; } catch { params[n] = input.value; } }
        }
        if (Object.keys(params).length) out.parameters = params;
      }
      if (index >= 0) items[index] = out; else items.push(out);
      changedTables();
    };
    dialog.returnValue = '';
    dialog.addEventListener('close', close);
    dialog.showModal();
  }

  // ---- graph: dagre layout, SVG drawing ---------------------------------------------------------
  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) e.setAttribute(k, String(v));
    for (const c of children) if (c) e.append(c);
    return e;
  }

  async function refreshGraph() {
    const r = await api('GET', '/graph');
    if (!r.ok) return;
    state.graph = r.json;
    fillStreamSelects();
    drawGraph();
  }

  function workerRole(name) {
    const g = state.graph;
    if (!g) return 'kernel';
    if ((g.sources || []).some(s => s.name === name)) return 'source';
    if ((g.sinks || []).some(s => s.name === name)) return 'sink';
    return 'kernel';
  }

  function drawGraph() {
    const g = state.graph;
    const root = $('#graph');
    if (!g || root.closest('section').hidden) return;
    const layout = new dagre.graphlib.Graph();
    layout.setGraph({ rankdir: 'TB', nodesep: 24, ranksep: 34, marginx: 10, marginy: 10 });
    layout.setDefaultEdgeLabel(() => ({}));
    for (const s of g.shared_memory || []) layout.setNode('s:' + s.name, { label: s.name, sub: `[${s.shape.join('×')}] ${s.dtype}`, kind: 'stream', width: Math.max(110, Math.max(s.name.length, `[${s.shape.join('×')}] ${s.dtype}`.length) * 7.5 + 20), height: 38 });
    for (const group of ['sources', 'kernels', 'sinks']) for (const n of g[group] || []) layout.setNode('n:' + n.name, { label: n.name, sub: n.kind, kind: group, width: Math.max(130, Math.max(n.name.length, (n.kind || '').length) * 7 + 16), height: 38 });
    const isStream = name => (g.shared_memory || []).some(s => s.name === name);
    for (const e of g.edges || []) {
      const from = (isStream(e.source) && e.role !== 'source' && e.role !== 'output' ? 's:' : 'n:') + e.source;
      const to = (isStream(e.target) && (e.role === 'source' || e.role === 'output') ? 's:' : 'n:') + e.target;
      if (layout.hasNode(from) && layout.hasNode(to)) layout.setEdge(from, to, { stream: e.stream, role: e.role, label: '', width: 50, height: 14 });
    }
    dagre.layout(layout);
    const size = layout.graph();
    root.setAttribute('viewBox', `0 0 ${Math.ceil(size.width)} ${Math.ceil(size.height)}`);
    root.setAttribute('width', Math.ceil(size.width));
    root.setAttribute('height', Math.ceil(size.height));
    const edges = layout.edges().map(id => {
      const e = layout.edge(id);
      const d = e.points.map((p, i) => `${i ? 'L' : 'M'}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' ');
      const producer = (g.edges || []).find(x => x.stream === e.stream && (x.role === 'output' || x.role === 'source'));
      const rate = producer && state.metrics[producer.source] ? state.metrics[producer.source].throughput_hz : null;
      return svg('g', { class: 'edge' }, svg('path', { d, 'marker-end': 'url(#arrow)' }),
        rate !== null && e.role !== 'auxiliary' ? (() => { const t = svg('text', { x: e.x, y: e.y - 3, 'text-anchor': 'middle', class: 'rate' }); t.textContent = `${rate.toFixed(0)} Hz`; return t; })() : null);
    });
    const nodes = layout.nodes().map(id => {
      const n = layout.node(id);
      const name = id.slice(2);
      const health = n.kind === 'stream' ? '' : healthOf(name);
      const group = svg('g', { class: `node ${n.kind === 'stream' ? 'stream' : 'worker'} ${health}`, transform: `translate(${n.x - n.width / 2},${n.y - n.height / 2})`, 'data-node': name });
      group.append(svg('rect', { width: n.width, height: n.height, rx: n.kind === 'stream' ? 12 : 3 }));
      const t1 = svg('text', { x: 8, y: 15 }); t1.textContent = name;
      const t2 = svg('text', { x: 8, y: 30, class: 'muted' }); t2.textContent = n.sub;
      group.append(t1, t2);
      group.addEventListener('click', () => showNode(name, n.kind));
      return group;
    });
    const defs = svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto-start-reverse' }, svg('path', { d: 'M0,0 L10,5 L0,10 z' })));
    root.replaceChildren(defs, ...edges, ...nodes);
  }

  function healthOf(name) {
    if (state.failures[name]) return 'failed';
    const status = workerStatus(name);
    if (!status) return '';
    const w = Object.assign({}, status, state.metrics[name]); // the events' health is newer than the last snapshot's
    if (w.health === 'failed' || w.alive === false && state.health && state.health.state === 'running') return 'failed';
    return w.health === 'active' ? 'healthy' : '';
  }

  function workerStatus(name) {
    const s = state.status;
    if (!s) return null;
    return (s.workers && s.workers[name]) || (s.sources && s.sources[name]) || (s.sinks && s.sinks[name]) || null;
  }

  async function showNode(name, kind) {
    $('#node-title').textContent = `${kind === 'stream' ? 'stream' : workerRole(name)} ${name}`;
    const out = [];
    if (kind === 'stream') {
      const s = (state.graph.shared_memory || []).find(x => x.name === name);
      out.push(JSON.stringify(Object.assign({}, s, state.status && state.status.streams ? { status: state.status.streams[name] } : {}), null, 2));
    } else {
      const failure = state.failures[name];
      if (failure) out.push('FAILURE: ' + (failure.error || failure.message || '') + '\n' + (failure.traceback || '') + '\n');
      out.push('figures: ' + JSON.stringify(Object.assign({}, workerStatus(name), state.metrics[name]), null, 2));
      const settings = await api('GET', '/settings');
      if (settings.status === 404) out.push('\nsettings: not available on this server');
      else if (settings.ok) out.push('\nsettings: ' + JSON.stringify((settings.json.nodes || {})[name] || {}, null, 2));
    }
    $('#node-details').textContent = out.join('\n');
  }

  // ---- runtime tables with sparklines ------------------------------------------------------------
  const sparks = {};
  function applyStatus(status) {
    state.status = status;
    if (status.state) {
      const badge = $('#state');
      badge.textContent = status.state;
      badge.className = 'state ' + status.state;
    }
    if (Array.isArray(status.failures)) { state.failures = {}; for (const f of status.failures) state.failures[f.kernel] = f; }
    for (const group of ['workers', 'sources', 'sinks']) for (const [name, w] of Object.entries(status[group] || {})) {
      if (w.frames_processed !== undefined || w.throughput_hz !== undefined) state.metrics[name] = Object.assign(state.metrics[name] || {}, w);
      else if (state.metrics[name]) state.metrics[name].health = w.health; // a snapshot's health is newer than the last event's
    }
    renderWorkers();
    renderStreams();
    renderFailures();
    renderSynthetic();
    drawGraph();
  }

  function renderWorkers() {
    const body = $('#workers tbody');
    const s = state.status;
    if (!s) return;
    const names = [];
    for (const group of ['sources', 'workers', 'sinks']) for (const name of Object.keys(s[group] || {})) names.push([name, group]);
    const existing = new Map($$('tr', body).map(r => [r.dataset.worker, r]));
    const rows = names.map(([name, group]) => {
      let row = existing.get(name);
      if (!row) {
        row = el('tr', { 'data-worker': name }, ...Array.from({ length: 13 }, () => el('td')));
        row.children[0].textContent = name;
        row.children[1].textContent = group === 'workers' ? 'kernel' : group.replace(/s$/, '');
        const holder = el('div', { class: 'spark' });
        row.children[6].append(holder);
        sparks[name] = { holder, plot: null };
      }
      updateWorkerRow(row, name);
      return row;
    });
    body.replaceChildren(...rows);
  }

  function updateWorkerRow(row, name) {
    const w = Object.assign({}, workerStatus(name), state.metrics[name]);
    const failed = !!state.failures[name] || w.health === 'failed';
    row.classList.toggle('bad', failed);
    const c = row.children;
    c[2].textContent = failed ? 'failed' : (w.health || '');
    c[2].className = failed ? 'health-bad' : (w.health === 'active' ? 'health-ok' : 'health-warn');
    c[3].textContent = w.pid ?? '';
    c[4].textContent = w.frames_processed ?? w.frames_written ?? '';
    c[5].textContent = fmt(w.throughput_hz, 1); c[5].className = 'num rate';
    c[7].textContent = fmt(w.avg_exec_us, 1); c[7].className = 'num';
    c[8].textContent = fmt(w.jitter_us_rms, 1); c[8].className = 'num';
    c[9].textContent = w.latency_us ? `${fmt(w.latency_us.p50, 0)} / ${fmt(w.latency_us.p99, 0)}` : '–'; c[9].className = 'num';
    c[10].textContent = w.cpu_percent !== undefined ? fmt(w.cpu_percent, 1) + ' %' : '–'; c[10].className = 'num';
    c[11].textContent = w.rss_bytes ? fmt(w.rss_bytes / 1048576, 1) : '–'; c[11].className = 'num';
    const skipped = w.skipped_per_input ? Object.values(w.skipped_per_input).reduce((a, b) => a + b, 0) : (w.missed_writes ?? '');
    c[12].textContent = skipped; c[12].className = 'num';
    drawSpark(name);
  }

  function drawSpark(name) {
    const spark = sparks[name];
    const h = state.history[name];
    if (!spark || !h || h.t.length < 2 || !spark.holder.isConnected) return;
    if (!spark.plot) {
      spark.plot = new uPlot({ width: 120, height: 28, cursor: { show: false }, legend: { show: false }, select: { show: false },
        axes: [{ show: false }, { show: false }], scales: { x: { time: false } }, series: [{}, { stroke: '#2456a6', width: 1 }] }, [h.t, h.v], spark.holder);
    } else {
      spark.plot.setData([h.t, h.v]);
    }
  }

  function onWorkerMetrics(data) {
    const name = data.kernel || data.name;
    if (!name) return;
    state.metrics[name] = Object.assign(state.metrics[name] || {}, data);
    const h = state.history[name] = state.history[name] || { t: [], v: [] };
    h.t.push(performance.now() / 1000);
    h.v.push(data.throughput_hz || 0);
    if (h.t.length > HISTORY) { h.t.shift(); h.v.shift(); }
    const row = $(`#workers tr[data-worker="${CSS.escape(name)}"]`);
    if (row) updateWorkerRow(row, name);
    throttledGraph();
  }
  // Nothing is polled: worker_metrics events carry each worker's health, rate, times, latencies, CPU and memory
  // (sent when it made progress or its health changed), stream_metrics events the streams' figures (once a
  // second while they change), and snapshot events the whole status after each command.
  function onStreamMetrics(data) {
    if (!state.status || !data || !data.streams) return;
    state.status.streams = data.streams;
    renderStreams();
  }
  function onWorkerStopped(data) {
    const name = data.kernel || data.name;
    if (!name || !state.metrics[name]) return;
    state.metrics[name].health = 'stopped';
    const row = $(`#workers tr[data-worker="${CSS.escape(name)}"]`);
    if (row) updateWorkerRow(row, name);
    throttledGraph();
  }
  let graphTimer = null;
  function throttledGraph() { if (!graphTimer) graphTimer = setTimeout(() => { graphTimer = null; drawGraph(); }, 1000); }

  function renderStreams() {
    const s = state.status;
    if (!s || !s.streams) return;
    $('#streams tbody').replaceChildren(...Object.entries(s.streams).map(([name, st]) => el('tr', {},
      el('td', { text: name }), el('td', { class: 'num', text: st.frames_published }), el('td', { class: 'num', text: fmt((st.fill || 0) * 100, 0) + ' %' }),
      el('td', { class: 'num', text: st.readers }), el('td', { text: st.writer_pid ? `pid ${st.writer_pid} (${st.writer_state})` : (st.writer_state || '') }),
      el('td', {}, el('button', { text: 'View', onclick: () => { showTab('viewers'); openViewer(name, Number($('#viewer-rate').value) || 5); } })))));
  }

  function renderFailures() {
    const list = Object.values(state.failures);
    $('#failures').replaceChildren(...(list.length ? list.map(f => el('div', { class: 'failure error', 'data-failure': f.kernel },
      el('strong', { text: `${f.kernel} (${f.type}${f.pid ? ', pid ' + f.pid : ''}): ` }), el('span', { class: 'message', text: f.error || f.message || '' }),
      f.traceback ? el('pre', { text: f.traceback }) : null)) : [el('p', { class: 'muted', text: 'no failures' })]));
  }

  // ---- stream viewers -----------------------------------------------------------------------------
  function fillStreamSelects() {
    const streams = (state.graph && state.graph.shared_memory) || [];
    for (const sel of [$('#viewer-stream'), $('#synthetic-stream')]) {
      const keep = sel.value;
      sel.replaceChildren(...streams.map(s => el('option', { value: s.name, text: `${s.name} [${s.shape.join('×')}] ${s.dtype}`, selected: s.name === keep })));
    }
  }

  // Viridis, sampled at 9 stops (matplotlib's colour map, CC0) and interpolated linearly.
  const VIRIDIS = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141], [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]];
  const LUT = (() => {
    const lut = new Uint8ClampedArray(256 * 3);
    for (let i = 0; i < 256; i++) {
      const x = i / 255 * (VIRIDIS.length - 1), k = Math.min(Math.floor(x), VIRIDIS.length - 2), f = x - k;
      for (let c = 0; c < 3; c++) lut[i * 3 + c] = VIRIDIS[k][c] + (VIRIDIS[k + 1][c] - VIRIDIS[k][c]) * f;
    }
    return lut;
  })();

  const viewers = new Map();
  function openViewer(name, rate) {
    if (viewers.has(name)) return;
    const stats = el('dl');
    const close = el('button', { text: 'Close' });
    const card = el('div', { class: 'viewer', 'data-stream': name }, el('div', { class: 'row' }, el('strong', { text: name }), close), el('div', { class: 'body' }), stats);
    $('#viewers').append(card);
    const v = { name, rate, card, stats, body: $('.body', card), timer: null, closed: false, kind: null, last: null, intervals: [], frames: 0, fetchTimes: [], plot: null, series: { t: [], v: [] } };
    viewers.set(name, v);
    close.addEventListener('click', () => { v.closed = true; clearTimeout(v.timer); if (v.plot) v.plot.destroy(); card.remove(); viewers.delete(name); });
    pollViewer(v);
  }

  async function pollViewer(v) {
    if (v.closed) return;
    const pipeline = state.health && state.health.state;
    if (pipeline === 'initialized' || pipeline === 'stopped') {
      setStats(v, [['stream', `none: the pipeline is ${pipeline}`]]);
      v.timer = setTimeout(() => pollViewer(v), 500);
      return;
    }
    const started = performance.now();
    try {
      const r = await api('GET', `/streams/${encodeURIComponent(v.name)}/latest`);
      if (r.ok && r.json.available) drawFrame(v, r.json);
      else if (!r.ok) setStats(v, [['error', detailOf(r)]]);
      else setStats(v, [['frame', 'none yet']]);
    } catch (e) { setStats(v, [['error', String(e)]]); }
    const wait = Math.max(0, 1000 / v.rate - (performance.now() - started));
    v.timer = setTimeout(() => pollViewer(v), wait);
  }

  function percentile(values, p) {
    if (!values.length) return null;
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
  }

  function drawFrame(v, f) {
    const now = performance.now();
    v.fetchTimes.push(now);
    while (v.fetchTimes.length && now - v.fetchTimes[0] > 5000) v.fetchTimes.shift();
    if (v.last && f.sequence > v.last.sequence && f.publish_ns > v.last.publish_ns) {
      v.intervals.push((f.publish_ns - v.last.publish_ns) / 1e9 / (f.sequence - v.last.sequence));
      if (v.intervals.length > 200) v.intervals.shift();
    }
    const isNew = !v.last || f.sequence !== v.last.sequence;
    v.last = f;
    if (isNew) v.frames++;
    const data = f.data || [];
    let min = Infinity, max = -Infinity, sum = 0;
    for (const x of data) { const n = Number(x); if (n < min) min = n; if (n > max) max = n; sum += n; }
    const mean = data.length ? sum / data.length : NaN;
    const shape = f.shape || [];
    const size = shape.reduce((a, b) => a * b, 1);
    const kind = shape.length >= 2 ? 'image' : (size <= 1 ? 'scalar' : 'line');
    if (v.kind !== kind) setupViewer(v, kind, shape);
    if (kind === 'image') drawImage(v, shape, data, min, max);
    else if (kind === 'line') v.plot.setData([Array.from(data, (_, i) => i), data.map(Number)]);
    else if (isNew) {
      v.series.t.push(Date.now() / 1000); v.series.v.push(Number(data[0]));
      if (v.series.t.length > 300) { v.series.t.shift(); v.series.v.shift(); }
      v.plot.setData([v.series.t, v.series.v]);
    }
    const meanInterval = v.intervals.length ? v.intervals.reduce((a, b) => a + b, 0) / v.intervals.length : null;
    const viewerRate = v.fetchTimes.length > 1 ? (v.fetchTimes.length - 1) / ((v.fetchTimes[v.fetchTimes.length - 1] - v.fetchTimes[0]) / 1000) : null;
    setStats(v, [
      ['frame', `#${f.sequence} (id ${f.frame_id})`], ['shape', `[${shape.join(', ')}]`], ['dtype', f.dtype],
      ['stream rate', meanInterval ? `${fmt(1 / meanInterval, 1)} Hz mean` : '–'],
      ['interval p99', v.intervals.length ? `${fmt(percentile(v.intervals, 0.99) * 1000, 3)} ms` : '–'],
      ['viewer rate', viewerRate ? `${fmt(viewerRate, 1)} fps` : '–'], ['frames seen', v.frames],
      ['min / max', `${fmt(min, 3)} / ${fmt(max, 3)}`], ['mean', fmt(mean, 4)], ['age', `${fmt(f.age_s * 1000, 1)} ms`],
      f.truncated ? ['truncated', 'yes (preview limit)'] : null,
    ]);
  }

  function setStats(v, pairs) { v.stats.replaceChildren(...pairs.filter(Boolean).flatMap(([k, val]) => [el('dt', { text: k }), el('dd', { 'data-stat': k, text: val })])); }

  function setupViewer(v, kind, shape) {
    if (v.plot) { v.plot.destroy(); v.plot = null; }
    v.kind = kind;
    if (kind === 'image') {
      const rows = shape[0], cols = shape.slice(1).reduce((a, b) => a * b, 1);
      v.canvas = el('canvas', { class: 'frame', width: cols, height: rows, 'data-testid': 'frame-canvas' });
      v.scale = el('canvas', { class: 'scale', width: 16, height: 256 });
      v.body.replaceChildren(v.canvas, el('div', {}, v.scale, el('div', { class: 'desc', 'data-scale': 'max' }), el('div', { class: 'desc', 'data-scale': 'min' })));
      const ctx = v.scale.getContext('2d');
      const image = ctx.createImageData(16, 256);
      for (let y = 0; y < 256; y++) for (let x = 0; x < 16; x++) { const i = (y * 16 + x) * 4, c = (255 - y) * 3; image.data[i] = LUT[c]; image.data[i + 1] = LUT[c + 1]; image.data[i + 2] = LUT[c + 2]; image.data[i + 3] = 255; }
      ctx.putImageData(image, 0, 0);
    } else {
      const holder = el('div');
      v.body.replaceChildren(holder);
      v.plot = new uPlot({ width: 390, height: 220, legend: { show: false }, scales: { x: { time: kind === 'scalar' } },
        series: [{}, { stroke: '#2456a6', width: 1, points: { show: false } }] }, [[], []], holder);
    }
  }

  function drawImage(v, shape, data, min, max) {
    const rows = shape[0], cols = shape.slice(1).reduce((a, b) => a * b, 1);
    const ctx = v.canvas.getContext('2d');
    const image = ctx.createImageData(cols, rows);
    const span = max > min ? 255 / (max - min) : 0;
    const n = Math.min(data.length, rows * cols);
    for (let i = 0; i < n; i++) {
      const c = Math.round((Number(data[i]) - min) * span) * 3, j = i * 4;
      image.data[j] = LUT[c]; image.data[j + 1] = LUT[c + 1]; image.data[j + 2] = LUT[c + 2]; image.data[j + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
    $('[data-scale="max"]', v.card).textContent = fmt(max, 2);
    $('[data-scale="min"]', v.card).textContent = fmt(min, 2);
  }

  // ---- test inputs ------------------------------------------------------------------------------
  function renderSynthetic() {
    const s = (state.status && state.status.synthetic_sources) || {};
    $('#synthetic tbody').replaceChildren(...Object.entries(s).map(([name, x]) => el('tr', {}, el('td', { text: name }), el('td', { text: x.pattern || '' }), el('td', { text: x.rate_hz ?? '' }), el('td', { text: x.frames_written ?? x.frames ?? '' }))));
  }

  async function startSynthetic(ev) {
    ev.preventDefault();
    const body = { stream_name: $('#synthetic-stream').value, pattern: $('#synthetic-pattern').value, seed: Number($('#synthetic-seed').value) || 0, amplitude: Number($('#synthetic-amplitude').value) };
    const rate = Number($('#synthetic-rate').value);
    if (rate > 0) body.rate_hz = rate;
    const r = await api('POST', '/synthetic/start', body);
    setResult($('#synthetic-result'), r.ok ? `synthetic input on ${body.stream_name}: ${body.pattern}` : `failed: ${detailOf(r)}`, !r.ok);
    if (r.ok && r.json.snapshot) applyStatus(r.json.snapshot);
  }

  async function stopSynthetic() {
    const name = $('#synthetic-stream').value;
    const r = await api('POST', '/synthetic/stop', { stream_name: name });
    setResult($('#synthetic-result'), r.ok ? `stopped the synthetic input on ${name}` : `failed: ${detailOf(r)}`, !r.ok);
    if (r.ok && r.json.snapshot) applyStatus(r.json.snapshot);
  }

  // ---- events log -------------------------------------------------------------------------------
  const FAILURE = /fail|error|hung|lost/;
  function logEvent(data, type, id) {
    if (type === 'worker_metrics' || type === 'stream_metrics') return; // many per second: the runtime tables show them
    const list = $('#events');
    const text = typeof data === 'string' ? data : JSON.stringify(data);
    const item = el('li', { class: FAILURE.test(type) ? 'failure' : null, 'data-type': type }, `${new Date().toLocaleTimeString()} ${id ? '#' + id + ' ' : ''}${type} ${text.length > 400 ? text.slice(0, 400) + '…' : text}`);
    list.append(item);
    while (list.children.length > 1000) list.firstChild.remove();
    filterEvent(item);
  }
  function filterEvent(item) {
    const q = $('#events-filter').value.trim().toLowerCase();
    item.hidden = ($('#events-failures').checked && !item.classList.contains('failure')) || (q && !item.textContent.toLowerCase().includes(q));
  }

  // ---- settings (GET /settings/schema, GET /settings, PATCH /settings/{node}, SSE /settings/events) --
  // One widget per field of the schema. A change sends a merge patch of that one field; the reply's
  // acknowledgement (or the 422 error, which names the field) is shown beside the field. Changes made by
  // anyone (this tab included) arrive on /settings/events and update the widgets.
  let settingsFeed = null;
  const settingWidgets = {}; // "node\u0000field" -> { set(value), ack(text, isError) }
  const isNumeric = f => f.type === 'number' || f.type === 'integer';
  const shownValue = v => v === null || v === undefined ? '' : (typeof v === 'object' ? JSON.stringify(v) : String(v));

  function settingWidget(node, f, value) {
    const ack = el('span', { class: 'result', 'data-ack': f.name });
    const canChange = f.live && hasScope('control');
    const why = !f.live ? 'not live: change it in the document (Document tab, PUT /document) and rebuild'
      : !hasScope('control') ? 'needs a token with the control scope' : null;
    let inputs = [], read, set, revert = () => set(current);
    let current = value; // the server's value, shown again when a change is refused
    if (f.type === 'boolean') {
      const box = el('input', { type: 'checkbox', name: f.name, checked: !!value });
      inputs = [box]; read = () => box.checked; set = v => { box.checked = !!v; };
    } else if (f.type === 'choice') {
      const select = el('select', { name: f.name }, (f.choices || []).map(c => el('option', { value: c, text: c, selected: c === value })));
      inputs = [select]; read = () => select.value; set = v => { select.value = v; };
    } else {
      // Numbers are typed as text so that whatever is typed reaches the server, whose 422 names the field.
      const text = el('input', { type: 'text', name: f.name, inputmode: isNumeric(f) ? 'decimal' : null, size: 12, value: shownValue(value) });
      inputs = [text];
      if (isNumeric(f) && f.minimum !== null && f.minimum !== undefined && f.maximum !== null && f.maximum !== undefined) {
        const slider = el('input', { type: 'range', name: f.name + '-slider', min: f.minimum, max: f.maximum, step: f.type === 'integer' ? 1 : (f.maximum - f.minimum) / 1000, value: value ?? f.minimum });
        slider.addEventListener('input', () => { text.value = slider.value; });
        slider.addEventListener('change', () => text.dispatchEvent(new Event('change')));
        text.addEventListener('input', () => { if (Number.isFinite(Number(text.value))) slider.value = text.value; });
        inputs.unshift(slider);
      }
      read = () => {
        const raw = text.value.trim();
        if (isNumeric(f)) { const n = Number(raw); return raw !== '' && Number.isFinite(n) ? n : raw; }
        if (f.type === 'array') { try { return JSON.parse(raw); } catch { return raw; } }
        return raw;
      };
      // A value typed and not yet sent is not overwritten by an update from elsewhere.
      let typing = false;
      text.addEventListener('input', () => { typing = true; });
      text.addEventListener('change', () => { typing = false; });
      set = v => { if (!typing) { text.value = shownValue(v); if (inputs.length > 1) inputs[0].value = v; } };
      revert = () => { typing = false; set(current); };
    }
    for (const i of inputs) { i.disabled = !canChange; if (why) i.title = why; }
    // This tab's own change comes back on the feed too, possibly before the reply: while a change is in
    // flight, and for events up to the reply's seq, the reply's acknowledgement is what the row shows.
    let pending = false, ackedSeq = 0;
    const change = async () => {
      setResult(ack, 'applying…', false);
      pending = true;
      const r = await api('PATCH', '/settings/' + encodeURIComponent(node), { [f.name]: read() }).finally(() => { pending = false; });
      if (r.ok) {
        ackedSeq = r.json.seq;
        setValue(r.json.values[f.name]);
        setResult(ack, `applied: ${shownValue(r.json.values[f.name])} (seq ${r.json.seq}${r.json.applied_by ? ', by ' + r.json.applied_by : ''})`, false);
      } else {
        const at = r.json && r.json.field ? r.json.field : null;
        const target = at && at !== f.name && settingWidgets[node + '\u0000' + at] ? settingWidgets[node + '\u0000' + at] : null;
        (target ? target.ack : m => setResult(ack, m, true))(`${detailOf(r)}`, true);
        ack.dataset.error = 'true';
        revert(); // the server kept its value: show it again (the error names what was refused)
      }
    };
    const setValue = v => { current = v; set(v); };
    inputs[inputs.length - 1].addEventListener('change', () => { delete ack.dataset.error; change(); });
    settingWidgets[node + '\u0000' + f.name] = { set: setValue, ack: (m, e) => setResult(ack, m, e), own: seq => pending || seq <= ackedSeq };
    const unit = f.unit ? ` ${f.unit}` : '';
    const bounds = isNumeric(f) && (f.minimum !== null || f.maximum !== null) ? ` [${f.minimum ?? '−∞'}, ${f.maximum ?? '∞'}]` : '';
    return el('tr', { 'data-node': node, 'data-field': f.name, class: f.live ? 'live' : 'not-live' },
      el('td', { text: f.name }), el('td', { class: 'widget' }, inputs, unit), el('td', {}, ack),
      el('td', { class: 'muted', text: `${f.type}${bounds}. ${f.description}${why ? ' (' + why + ')' : ''}` }));
  }

  async function refreshSettings() {
    const root = $('#settings');
    const [schema, values] = await Promise.all([api('GET', '/settings/schema'), api('GET', '/settings')]);
    if (schema.status === 404) { root.replaceChildren(el('p', { class: 'muted', text: 'Live settings are not available on this server.' })); return; }
    if (!schema.ok) { root.replaceChildren(el('p', { class: 'error', text: detailOf(schema) })); return; }
    const current = (values.ok && values.json.nodes) || {};
    for (const k of Object.keys(settingWidgets)) delete settingWidgets[k];
    const parts = [el('p', { class: 'muted' }, 'Live fields apply at once (PATCH /settings/{node}); the others change with the document. ', el('span', { id: 'settings-feed', text: '' }))];
    for (const [node, def] of Object.entries(schema.json.nodes || {})) {
      if (!def.fields.length) continue;
      const rows = def.fields.map(f => settingWidget(node, f, current[node] && f.name in current[node] ? current[node][f.name] : f.default));
      parts.push(el('h3', { text: `${node} (${def.kind})` }), el('table', { class: 'grid settings', 'data-node': node }, el('tbody', {}, rows)));
    }
    root.replaceChildren(...(parts.length > 1 ? parts : [el('p', { class: 'muted', text: 'no node has settings' })]));
    followSettings(values.ok ? values.json.seq : 0);
  }

  // Follows /settings/events (SSE over fetch, with the bearer header) while the Settings tab is shown.
  async function followSettings(afterSeq) {
    if (settingsFeed) settingsFeed.abort();
    const abort = settingsFeed = new AbortController();
    let last = String(afterSeq);
    while (!abort.signal.aborted && !$('#tab-settings').hidden) {
      try {
        const response = await fetch('/settings/events', { headers: headers({ Accept: 'text/event-stream', 'Last-Event-ID': last }), cache: 'no-store', signal: abort.signal });
        if (response.status === 401) { await askToken('the settings feed needs a token'); continue; }
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        const feed = $('#settings-feed');
        if (feed) feed.textContent = '● live updates';
        await readSse(response, (type, e, id) => {
          if (id !== null) last = id;
          if (type === 'lost') { refreshSettings(); abort.abort(); return; }
          if (type === 'document_replaced') { documentReplaced(e && e.revision); return; }
          if (type !== 'setting' || !e) return;
          const w = settingWidgets[e.node + '\u0000' + e.field];
          if (!w || w.own(e.seq)) return;
          w.set(e.new);
          w.ack(`now ${shownValue(e.new)} (was ${shownValue(e.old)}; seq ${e.seq}${e.client ? ', from ' + e.client : ''}${e.scope ? ' ' + e.scope : ''})`, false);
        });
      } catch (e) {
        if (abort.signal.aborted) return;
        console.warn('settings feed:', e);
      }
      await sleep(1000);
    }
  }

  // ---- profiling (GET /profiling, refreshed every 2 s while shown) ------------------------------
  let profilingTimer = null;
  async function refreshProfiling() {
    clearTimeout(profilingTimer);
    const root = $('#profiling');
    const r = await api('GET', '/profiling');
    if (r.status === 404) { root.replaceChildren(el('p', { class: 'muted', text: 'Profiling is not available on this server.' })); return; }
    if (!r.ok) {
      root.replaceChildren(el('p', { class: 'error', text: detailOf(r) }));
    } else {
      const num = (x, d = 1) => el('td', { class: 'num', text: typeof x === 'number' ? fmt(x, d) : '–' });
      const lat = l => [l ? num(l.count, 0) : num(null), ...['p50_us', 'p90_us', 'p99_us', 'p999_us', 'max_us', 'mean_us'].map(k => num(l ? l[k] : null))];
      const head = cols => el('thead', {}, el('tr', {}, cols.map(c => el('th', { text: c }))));
      const streams = [], readers = [];
      for (const s of r.json.streams || []) {
        const w = s.writer || {};
        streams.push(el('tr', { 'data-stream': s.name }, el('td', { text: s.name }), el('td', { text: w.node || w.process_id || '–' }), el('td', { text: w.state || '' }),
          num(w.frames, 0), num(w.blocked_seconds, 3), num(w.space_waits, 0), num(s.capacity_frames, 0), num(s.fill, 2)));
        for (const reader of s.readers || []) {
          readers.push(el('tr', { 'data-stream': s.name, 'data-reader': reader.node || reader.process_id || String(reader.index) },
            el('td', { text: s.name }), el('td', { text: reader.node || reader.process_id || `#${reader.index}` }), el('td', { text: reader.delivery || '' }),
            num(reader.frames, 0), num(reader.wait_seconds, 3), num(reader.skipped, 0), num(reader.torn, 0), num(reader.fill, 2), ...lat(reader.latency)));
        }
      }
      const nodes = (r.json.nodes || []).map(n => el('tr', { 'data-node': n.name }, el('td', { text: n.name }), ...lat(n.compute)));
      root.replaceChildren(
        el('p', { class: 'muted', text: `snapshot ${r.json.time}${r.json.stale ? ' (stale: the pipeline is not running)' : ''}; refreshed every 2 s` }),
        el('h3', { text: 'Reader latency (publish to read) and waits' }),
        el('table', { class: 'grid', id: 'profiling-readers' }, head(['stream', 'reader', 'delivery', 'frames', 'wait s', 'skipped', 'torn', 'fill', 'count', 'p50 µs', 'p90 µs', 'p99 µs', 'p99.9 µs', 'max µs', 'mean µs']), el('tbody', {}, readers)),
        el('h3', { text: 'Compute time per node' }),
        el('table', { class: 'grid', id: 'profiling-nodes' }, head(['node', 'count', 'p50 µs', 'p90 µs', 'p99 µs', 'p99.9 µs', 'max µs', 'mean µs']), el('tbody', {}, nodes)),
        el('h3', { text: 'Writers' }),
        el('table', { class: 'grid', id: 'profiling-writers' }, head(['stream', 'writer', 'state', 'frames', 'blocked s', 'space waits', 'capacity', 'fill']), el('tbody', {}, streams)));
    }
    if (r.ok) drawHistograms(r.json);
    if (!$('#tab-profiling').hidden) profilingTimer = setTimeout(refreshProfiling, 2000);
    else stopTraceFeed();
    const select = $('#trace-node');
    if (r.ok && select && select.options.length === 0) for (const n of r.json.nodes || []) select.append(el('option', { value: n.name, text: n.name }));
  }

  // ---- histograms: the snapshot's buckets (powers of two in µs) as uPlot bars, one plot per reader and node ----
  // Plots are kept across refreshes (setData), and removed when their reader or node is gone.
  const histograms = {};
  const usLabel = us => us >= 1e6 ? `${+(us / 1e6).toPrecision(3)} s` : us >= 1e3 ? `${+(us / 1e3).toPrecision(3)} ms` : `${us} µs`;
  function drawHistograms(snapshot) {
    const root = $('#profiling-histograms');
    const wanted = [];
    for (const s of snapshot.streams || []) {
      for (const reader of s.readers || []) {
        if (reader.latency && reader.latency.buckets) wanted.push({ key: `latency ${s.name} ${reader.node || reader.process_id || reader.index}`, title: `${s.name} → ${reader.node || reader.process_id || '#' + reader.index}: latency`, h: reader.latency, kind: 'latency', stream: s.name });
      }
    }
    for (const n of snapshot.nodes || []) if (n.compute && n.compute.buckets) wanted.push({ key: `compute ${n.name}`, title: `${n.name}: compute time`, h: n.compute, kind: 'compute', node: n.name });
    const keep = new Set(wanted.map(w => w.key));
    for (const [key, entry] of Object.entries(histograms)) if (!keep.has(key)) { entry.plot.destroy(); entry.box.remove(); delete histograms[key]; }
    for (const w of wanted) {
      let entry = histograms[w.key];
      if (!entry) {
        const box = el('div', { class: 'histogram', 'data-kind': w.kind, 'data-stream': w.stream, 'data-node': w.node }, el('div', { class: 'muted', text: w.title }));
        root.append(box);
        const plot = new uPlot({
          width: 320, height: 160, legend: { show: false }, cursor: { show: false }, select: { show: false },
          scales: { x: { time: false, range: (u, min, max) => [min - 0.5, max + 0.5] }, y: { range: (u, min, max) => [0, Math.max(1, max) * 1.05] } },
          axes: [{ incrs: [1, 2, 4, 8], values: (u, vals) => vals.map(v => Number.isInteger(v) && v >= 0 ? usLabel(2 ** v) : ''), size: 30 },
            { size: 50, values: (u, vals) => vals.map(v => v >= 1e6 ? `${v / 1e6}M` : v >= 1e3 ? `${v / 1e3}k` : String(v)) }],
          series: [{}, { label: 'frames', fill: '#2456a6cc', stroke: '#2456a6', width: 1, paths: uPlot.paths.bars({ size: [0.85, 60] }), points: { show: false } }],
        }, [[], []], box);
        entry = histograms[w.key] = { box, plot };
      }
      // Bucket i holds the values up to 2^i µs (above 2^(i-1) µs): x is i, labelled with its bound.
      const buckets = w.h.buckets;
      entry.plot.setData([buckets.map(b => Math.log2(b.up_to_us)), buckets.map(b => b.count)]);
      entry.box.dataset.buckets = String(buckets.length);
      entry.box.dataset.total = String(buckets.reduce((a, b) => a + b.count, 0));
      entry.box.title = `${w.title}: ${buckets.filter(b => b.count).map(b => `≤${usLabel(b.up_to_us)}: ${b.count}`).join(', ')}`;
    }
  }

  // ---- traces: POST /profiling/traces switches them on for a node, GET /profiling/traces (SSE) ----
  let traceFeed = null;
  function stopTraceFeed() { if (traceFeed) { traceFeed.abort(); traceFeed = null; } }

  // The samples of the current trace as a uPlot scatter: publish-to-read latency and compute time (µs) against
  // the frame's publish time (s since the first sample), the last TRACE_POINTS samples, redrawn once per frame.
  const TRACE_POINTS = 5000;
  const tracePlot = { plot: null, t0: null, samples: [], pending: false };
  function resetTracePlot() {
    tracePlot.t0 = null;
    tracePlot.samples = [];
    if (!tracePlot.plot) {
      tracePlot.plot = new uPlot({
        width: 560, height: 300, scales: { x: { time: false } },
        axes: [{ label: 's since the first sample' }, { label: 'µs' }],
        series: [{ label: 's' },
          { label: 'latency µs', stroke: '#2456a6', paths: () => null, points: { show: true, size: 3, fill: '#2456a6' } },
          { label: 'compute µs', stroke: '#d9822b', paths: () => null, points: { show: true, size: 3, fill: '#d9822b' } }],
      }, [[], [], []], $('#trace-plot'));
    }
    drawTracePlot();
  }
  function addTraceSamples(batch) {
    for (const t of batch) {
      if (tracePlot.t0 === null) tracePlot.t0 = t.publish_ns;
      tracePlot.samples.push([(t.publish_ns - tracePlot.t0) / 1e9, (t.read_ns - t.publish_ns) / 1000, t.compute_ns / 1000]);
    }
    if (tracePlot.samples.length > TRACE_POINTS) tracePlot.samples.splice(0, tracePlot.samples.length - TRACE_POINTS);
    if (!tracePlot.pending) { tracePlot.pending = true; requestAnimationFrame(drawTracePlot); }
  }
  function drawTracePlot() {
    tracePlot.pending = false;
    const s = tracePlot.samples.slice().sort((a, b) => a[0] - b[0]); // uPlot needs x in order; streams interleave
    tracePlot.plot.setData([s.map(x => x[0]), s.map(x => x[1]), s.map(x => x[2])]);
    $('#trace-plot').dataset.samples = String(s.length);
  }
  async function startTraces(ev) {
    ev.preventDefault();
    const node = $('#trace-node').value;
    const r = await api('POST', '/profiling/traces', { nodes: [node], every: 1, seconds: 10 });
    setResult($('#trace-result'), r.ok ? `tracing ${node} for 10 s` : `failed: ${detailOf(r)}`, !r.ok);
    if (!r.ok) return;
    stopTraceFeed();
    const abort = traceFeed = new AbortController();
    const rows = $('#traces tbody');
    rows.replaceChildren();
    resetTracePlot();
    try {
      const response = await fetch('/profiling/traces', { headers: headers({ Accept: 'text/event-stream' }), cache: 'no-store', signal: abort.signal });
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      await readSse(response, (type, data) => {
        if (type !== 'trace' || !Array.isArray(data)) return;
        addTraceSamples(data);
        for (const t of data) {
          rows.prepend(el('tr', { 'data-node': t.node }, el('td', { text: t.node }), el('td', { text: t.stream }), el('td', { class: 'num', text: t.seq }),
            el('td', { class: 'num', text: fmt((t.read_ns - t.publish_ns) / 1000, 1) }), el('td', { class: 'num', text: fmt(t.compute_ns / 1000, 1) })));
        }
        while (rows.children.length > 200) rows.lastChild.remove();
      });
    } catch (e) {
      if (!abort.signal.aborted) setResult($('#trace-result'), `trace stream: ${e.message}`, true);
    }
  }
  async function stopTraces() {
    stopTraceFeed();
    const r = await api('DELETE', '/profiling/traces');
    setResult($('#trace-result'), r.ok ? 'tracing off' : `failed: ${detailOf(r)}`, !r.ok);
  }

  // ---- a replaced document (PUT /document or /document/load, by this console or any other client) ----------
  // Announced as document_updated on /events and as document_replaced on /settings/events and /topology/events:
  // whichever comes first reloads the document, the graph, the runtime tables and the settings widgets, once per revision.
  let loadedRevision = 0;
  async function documentReplaced(revision) {
    if (typeof revision === 'number') {
      if (revision <= loadedRevision) return;
      loadedRevision = revision;
    }
    const select = $('#trace-node');
    if (select) select.replaceChildren(); // filled again from the next profiling snapshot
    await Promise.all([refreshInfo(), refreshGraph(), refreshYaml(false), refreshTables(), refreshHealth(), refreshStatus()]);
    if (!$('#tab-settings').hidden) await refreshSettings();
    if (!$('#tab-profiling').hidden) await refreshProfiling();
    document.body.dataset.revision = String(loadedRevision);
  }

  async function refreshStatus() {
    const r = await api('GET', '/snapshot');
    if (r.ok && r.json) applyStatus(r.json);
  }

  // ---- start ------------------------------------------------------------------------------------
  async function main() {
    for (const b of $$('#tabs button')) b.addEventListener('click', () => showTab(b.dataset.tab));
    for (const b of $$('#commands button')) b.addEventListener('click', () => command(b.dataset.command));
    $('#load-form').addEventListener('submit', loadDocument);
    $('#launch-form').addEventListener('submit', launchServer);
    $('#viewer-form').addEventListener('submit', ev => { ev.preventDefault(); openViewer($('#viewer-stream').value, Math.min(30, Math.max(0.5, Number($('#viewer-rate').value) || 5))); });
    $('#synthetic-form').addEventListener('submit', startSynthetic);
    $('#synthetic-stop').addEventListener('click', stopSynthetic);
    $('#doc-apply').addEventListener('click', applyYaml);
    $('#doc-revert').addEventListener('click', () => refreshYaml(true));
    $('#doc-save').addEventListener('click', saveYaml);
    $('#events-filter').addEventListener('input', () => $$('#events li').forEach(filterEvent));
    $('#events-failures').addEventListener('change', () => $$('#events li').forEach(filterEvent));
    tabOpened.graph = drawGraph;
    tabOpened.control = refreshServers;
    tabOpened.document = () => { if (editor) editor.refresh(); };
    tabOpened.settings = refreshSettings;
    tabOpened.profiling = refreshProfiling;
    $('#trace-form').addEventListener('submit', startTraces);
    $('#trace-stop').addEventListener('click', stopTraces);
    tabOpened.runtime = () => Object.keys(sparks).forEach(drawSpark);

    const auth = await api('GET', '/auth');
    scope = auth.ok ? auth.json.scope : 'read';
    setupEditor();
    on('snapshot', d => { if (d && d.snapshot) applyStatus(d.snapshot); });
    on('state_changed', () => refreshHealth());
    on('worker_metrics', onWorkerMetrics);
    on('stream_metrics', onStreamMetrics);
    on('worker_stopped', onWorkerStopped);
    for (const t of ['worker_failed', 'source_failed', 'sink_failed']) on(t, d => { const name = d.kernel || d.name; if (name) state.failures[name] = d; renderFailures(); const row = $(`#workers tr[data-worker="${CSS.escape(name)}"]`); if (row) updateWorkerRow(row, name); drawGraph(); });
    on('worker_started', d => { const name = d.kernel || d.name; if (name && state.failures[name]) { delete state.failures[name]; renderFailures(); } });
    on('document_updated', d => documentReplaced(d && d.revision));
    on('server_launched', refreshServers);
    on('server_stopped', refreshServers);
    on('*', logEvent);
    await Promise.all([refreshHealth(), refreshInfo(), refreshGraph(), refreshServers(), refreshYaml(true), refreshTables()]);
    loadedRevision = (state.health && state.health.document_revision) || 0;
    document.body.dataset.revision = String(loadedRevision);
    runEvents();
    showTab((location.hash || '#control').slice(1) || 'control');
    document.body.dataset.ready = 'true';
  }

  main();
})();
