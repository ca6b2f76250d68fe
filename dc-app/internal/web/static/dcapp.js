// dc-app's page script: the Import Token dialog (drop zone, browse, paste,
// preview, import), removing a synced space, and flags. Plain JavaScript,
// no build step. Everything that comes from a token or from Cloud is put
// on the page with textContent, never as HTML.
(() => {
  'use strict';

  const $ = (sel, root = document) => root.querySelector(sel);
  const csrf = ($('meta[name="csrf-token"]') || {}).content || '';
  let titles = {};
  try { titles = JSON.parse(($('#error-titles') || {}).textContent || '{}'); } catch (_) { titles = {}; }
  const titleFor = (code) => titles[code] || titles.internal || 'Something went wrong';
  const MAX_UPLOAD = 64 * 1024;

  // Controls that need this script start disabled in the HTML, so that no
  // button does nothing when the script cannot run.
  document.querySelectorAll('[data-needs-js]').forEach((el) => { el.disabled = false; });

  // ---- Flags --------------------------------------------------------------

  const flags = $('#flags');
  const icons = {
    success: '<svg class="flag__icon" viewBox="0 0 24 24" aria-hidden="true"><circle cx="12" cy="12" r="10" fill="currentColor"/><path d="m7.5 12.5 3 3 6-6.5" fill="none" stroke="#fff" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"/></svg>',
    info: '<svg class="flag__icon" viewBox="0 0 24 24" aria-hidden="true"><circle cx="12" cy="12" r="10" fill="currentColor"/><path d="M12 11v6M12 7.5v.5" fill="none" stroke="#fff" stroke-width="2" stroke-linecap="round"/></svg>',
  };
  icons.error = icons.info;
  icons.warning = icons.info;

  function wireFlag(el) {
    const close = () => el.remove();
    const btn = el.querySelector('[data-flag-close]');
    if (btn) btn.addEventListener('click', close);
    if (el.hasAttribute('data-autodismiss')) setTimeout(close, 8000);
  }

  // flag shows a toast. Icons are fixed markup; title and text are text.
  function flag(kind, title, text) {
    const el = document.createElement('div');
    el.className = 'flag flag--' + kind;
    el.innerHTML = icons[kind] || icons.info;
    const body = document.createElement('div');
    body.className = 'flag__body';
    const t = document.createElement('div');
    t.className = 'flag__title';
    t.textContent = title;
    const p = document.createElement('p');
    p.textContent = text;
    body.append(t, p);
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'btn btn--subtle flag__close';
    btn.setAttribute('aria-label', 'Dismiss');
    btn.setAttribute('data-flag-close', '');
    btn.innerHTML = '<svg class="btn__icon" viewBox="0 0 16 16" aria-hidden="true"><path d="m4 4 8 8M12 4l-8 8" stroke="currentColor" stroke-width="1.5" stroke-linecap="round"/></svg>';
    el.append(body, btn);
    if (kind === 'success' || kind === 'info') el.setAttribute('data-autodismiss', '');
    flags.append(el);
    wireFlag(el);
  }
  document.querySelectorAll('.flag').forEach(wireFlag);

  // ---- API ----------------------------------------------------------------

  // api calls dc-app's JSON API with the session and the CSRF token, and
  // always resolves: {ok, status, data} or {ok: false, status, error}.
  async function api(method, path, body, contentType) {
    const headers = { Accept: 'application/json', 'X-CSRF-Token': csrf };
    if (contentType) headers['Content-Type'] = contentType;
    let res;
    try {
      res = await fetch(path, { method, body, headers, credentials: 'same-origin', cache: 'no-store' });
    } catch (_) {
      return { ok: false, status: 0, error: { code: 'network', message: 'Could not reach dc-app. Check your connection and try again.' } };
    }
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    if (res.ok) return { ok: true, status: res.status, data };
    const error = (data && data.error) || { code: 'internal', message: 'Something went wrong on our side (HTTP ' + res.status + '). Try again.' };
    if (res.status === 401) error.message += ' Reload the page to sign in again.';
    return { ok: false, status: res.status, error };
  }

  // ---- Dialogs --------------------------------------------------------------

  function focusables(root) {
    return Array.from(root.querySelectorAll('button, [href], input, textarea, select, [tabindex]:not([tabindex="-1"])'))
      .filter((el) => !el.disabled && el.getClientRects().length > 0);
  }

  // A modal <dialog>: the rest of the page is inert, Escape closes it
  // (the browser's cancel event), Tab and Shift+Tab cycle inside it, and
  // focus returns to the control that opened it.
  function setupDialog(dialog) {
    let opener = null;
    dialog.addEventListener('keydown', (e) => {
      if (e.key !== 'Tab') return;
      const f = focusables(dialog);
      if (!f.length) return;
      const first = f[0];
      const last = f[f.length - 1];
      if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
      else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
    });
    dialog.querySelectorAll('[data-dialog-close]').forEach((b) => b.addEventListener('click', () => dialog.close()));
    dialog.addEventListener('close', () => { if (opener) opener.focus(); });
    return {
      open(from, focusEl) {
        opener = from || document.activeElement;
        dialog.showModal();
        if (focusEl) focusEl.focus();
      },
      close() { dialog.close(); },
    };
  }

  function showError(box, err) {
    box.querySelector('.section-message__title').textContent = titleFor(err.code);
    box.querySelector('p').textContent = err.message || '';
    box.hidden = false;
  }

  // ---- Import Token ---------------------------------------------------------

  const importDialog = $('#import-dialog');
  if (importDialog) {
    const dlg = setupDialog(importDialog);
    const openBtn = $('#import-open');
    const zone = $('#dropzone');
    const fileInput = $('#token-file');
    const text = $('#token-text');
    const choose = $('#import-choose');
    const checking = $('#import-checking');
    const errorBox = $('#import-error');
    const preview = $('#import-preview');
    const form = $('#import-form');
    const nameInput = $('#sync-name');
    const nameError = $('#sync-name-error');
    const permsInput = $('#local-perms');
    const permsError = $('#local-perms-error');
    const submit = $('#import-submit');
    const restart = $('#import-restart');

    let current = null; // {file} or {text}, with the preview once known
    let seq = 0; // drops answers to superseded requests
    let busy = false;

    function setFieldError(input, box, msg) {
      box.textContent = msg || '';
      box.hidden = !msg;
      if (msg) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');
    }

    function reset() {
      seq++;
      current = null;
      busy = false;
      fileInput.value = '';
      text.value = '';
      choose.hidden = false;
      checking.hidden = true;
      errorBox.hidden = true;
      preview.hidden = true;
      submit.hidden = true;
      restart.hidden = true;
      zone.disabled = false;
      setFieldError(nameInput, nameError, '');
      setFieldError(permsInput, permsError, '');
      setSubmitBusy(false);
    }

    function setSubmitBusy(on) {
      busy = on;
      submit.disabled = on;
      submit.setAttribute('aria-busy', on ? 'true' : 'false');
      submit.innerHTML = '';
      if (on) {
        const s = document.createElement('span');
        s.className = 'spinner';
        s.setAttribute('aria-hidden', 'true');
        submit.append(s, document.createTextNode('Importing…'));
      } else {
        submit.textContent = 'Import';
      }
    }

    function fail(err) {
      checking.hidden = true;
      choose.hidden = false;
      zone.disabled = false;
      showError(errorBox, err);
    }

    async function check(source) {
      const my = ++seq;
      current = source;
      errorBox.hidden = true;
      preview.hidden = true;
      submit.hidden = true;
      restart.hidden = true;
      if (source.file && source.file.size > MAX_UPLOAD) {
        fail({ code: 'payload_too_large', message: 'This file is larger than 64 KiB, far larger than a space token. Choose the .token file you were sent.' });
        return;
      }
      zone.disabled = true;
      checking.hidden = false;
      let res;
      if (source.file) {
        const fd = new FormData();
        fd.append('file', source.file, source.file.name || 'token');
        res = await api('POST', '/api/v1/token-previews', fd);
      } else {
        res = await api('POST', '/api/v1/token-previews', source.text, 'text/plain; charset=utf-8');
      }
      if (my !== seq) return;
      if (!res.ok) { fail(res.error); restart.hidden = false; return; }
      current.preview = res.data;
      showPreview(res.data);
    }

    function yes(b) { return b ? 'Synced' : 'Not synced'; }

    function showPreview(p) {
      checking.hidden = true;
      choose.hidden = true;
      const site = p.site.displayUrl || p.site.baseUrl;
      $('#pv-site').textContent = site;
      const base = $('#pv-site-base');
      base.hidden = !p.site.displayUrl || p.site.displayUrl === p.site.baseUrl;
      base.textContent = 'Confluence Cloud address: ' + p.site.baseUrl;
      $('#pv-space').textContent = p.space.name + ' (' + p.space.key + ')';
      $('#pv-sync').textContent = p.syncName;
      const perms = $('#pv-perms');
      perms.textContent = '';
      const list = (p.settings && p.settings.permissions) || [];
      if (!list.length) {
        const li = document.createElement('li');
        li.textContent = 'Space admins only';
        perms.append(li);
      }
      list.forEach((x) => {
        const li = document.createElement('li');
        li.className = 'tag';
        li.textContent = x.name || x.id;
        li.title = x.type === 'group' ? 'Group' : 'User';
        perms.append(li);
      });
      $('#pv-comments').textContent = yes(p.settings && p.settings.comments);
      $('#pv-labels').textContent = yes(p.settings && p.settings.labels);
      const exp = new Date(p.expiresAt);
      const days = Math.max(0, Math.round((exp - Date.now()) / 86400000));
      $('#pv-expires').textContent = exp.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }) +
        (days >= 1 ? ' (in ' + days + (days === 1 ? ' day)' : ' days)') : ' (today)');
      const msg = $('#pv-message');
      msg.textContent = p.message || '';
      msg.hidden = !p.message;
      $('#pv-message-caption').hidden = !p.message;
      $('#pv-no-message').hidden = !!p.message;
      nameInput.value = p.suggestedName || p.space.name || '';
      permsInput.value = '';
      setFieldError(nameInput, nameError, '');
      setFieldError(permsInput, permsError, '');
      preview.hidden = false;
      submit.hidden = false;
      restart.hidden = false;
      setSubmitBusy(false);
      nameInput.focus();
      nameInput.select();
    }

    function handleFile(file) {
      if (!file || busy) return;
      check({ file });
    }

    function handleText(value) {
      const t = (value || '').trim();
      if (!t || busy) return;
      check({ text: t });
    }

    openBtn.addEventListener('click', () => { reset(); dlg.open(openBtn, zone); });
    restart.addEventListener('click', () => { reset(); zone.focus(); });

    // The drop zone is a button: click or Enter/Space browses.
    zone.addEventListener('click', () => fileInput.click());
    fileInput.addEventListener('change', () => handleFile(fileInput.files[0]));

    ['dragenter', 'dragover'].forEach((type) => zone.addEventListener(type, (e) => {
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
      zone.classList.add('is-dragover');
    }));
    ['dragleave', 'dragend'].forEach((type) => zone.addEventListener(type, () => zone.classList.remove('is-dragover')));
    zone.addEventListener('drop', (e) => {
      e.preventDefault();
      zone.classList.remove('is-dragover');
      const dt = e.dataTransfer;
      if (dt && dt.files && dt.files.length) handleFile(dt.files[0]);
      else if (dt) handleText(dt.getData('text/plain'));
    });
    // A file dropped beside the zone must not make the browser open it.
    ['dragover', 'drop'].forEach((type) => importDialog.addEventListener(type, (e) => e.preventDefault()));

    // Paste anywhere in the dialog (except the name and permission fields):
    // a copied file, or the token text.
    importDialog.addEventListener('paste', (e) => {
      const target = e.target;
      if (target === nameInput || target === permsInput) return;
      const cd = e.clipboardData;
      if (!cd) return;
      if (cd.files && cd.files.length) { e.preventDefault(); handleFile(cd.files[0]); return; }
      const t = cd.getData('text/plain') || cd.getData('text');
      if (!t) return;
      e.preventDefault();
      text.value = t.trim();
      handleText(t);
    });
    let typing = null;
    text.addEventListener('input', () => {
      clearTimeout(typing);
      typing = setTimeout(() => handleText(text.value), 600);
    });

    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (busy || !current || !current.preview) return;
      const name = nameInput.value.trim();
      if (!name) { setFieldError(nameInput, nameError, 'Enter a name for the synced space.'); nameInput.focus(); return; }
      setFieldError(nameInput, nameError, '');
      setFieldError(permsInput, permsError, '');
      errorBox.hidden = true;
      setSubmitBusy(true);
      const p = current.preview;
      const expect = { siteBaseUrl: p.site.baseUrl, spaceId: p.space.id, syncId: p.syncId };
      let res;
      if (current.file) {
        const fd = new FormData();
        fd.append('file', current.file, current.file.name || 'token');
        fd.append('name', name);
        fd.append('permissions', permsInput.value);
        fd.append('expectSiteBaseUrl', expect.siteBaseUrl);
        fd.append('expectSpaceId', expect.spaceId);
        fd.append('expectSyncId', expect.syncId);
        res = await api('POST', '/api/v1/synced-spaces', fd);
      } else {
        const perms = permsInput.value.split(/[\n,;]/).map((s) => s.trim()).filter(Boolean).map((s) => {
          const i = s.indexOf(':');
          return i < 0 ? { type: 'user', name: s } : { type: s.slice(0, i).trim().toLowerCase(), name: s.slice(i + 1).trim() };
        });
        res = await api('POST', '/api/v1/synced-spaces', JSON.stringify({ token: current.text, name, permissions: perms, expect }), 'application/json');
      }
      if (res.ok) {
        const id = res.data.syncedSpace.id;
        location.assign('/space-sync?imported=' + encodeURIComponent(id) + '#space-' + encodeURIComponent(id));
        return;
      }
      setSubmitBusy(false);
      const err = res.error;
      if (err.code === 'validation_failed' && err.fields) {
        if (err.fields.name) setFieldError(nameInput, nameError, err.fields.name);
        if (err.fields.permissions) setFieldError(permsInput, permsError, err.fields.permissions);
        (err.fields.name ? nameInput : permsInput).focus();
        return;
      }
      showError(errorBox, err);
      // A token Cloud refused for good cannot be imported by trying again.
      const retryable = ['cloud_unreachable', 'rate_limited', 'unavailable', 'internal', 'network'].includes(err.code);
      submit.hidden = !retryable;
      errorBox.scrollIntoView({ block: 'nearest' });
    });
  }

  // ---- Remove -------------------------------------------------------------

  const removeDialog = $('#remove-dialog');
  if (removeDialog) {
    const dlg = setupDialog(removeDialog);
    const confirm = $('#remove-confirm');
    const errorBox = $('#remove-error');
    let target = null;

    document.querySelectorAll('[data-remove]').forEach((btn) => btn.addEventListener('click', () => {
      target = { id: btn.dataset.remove, name: btn.dataset.name, row: btn.closest('tr') };
      $('#remove-name').textContent = target.name;
      errorBox.hidden = true;
      confirm.disabled = false;
      confirm.textContent = 'Remove';
      dlg.open(btn, $('[data-dialog-close]', removeDialog));
    }));

    confirm.addEventListener('click', async () => {
      if (!target) return;
      confirm.disabled = true;
      confirm.setAttribute('aria-busy', 'true');
      confirm.innerHTML = '<span class="spinner" aria-hidden="true"></span>';
      confirm.append(document.createTextNode('Removing…'));
      errorBox.hidden = true;
      const res = await api('DELETE', '/api/v1/synced-spaces/' + encodeURIComponent(target.id));
      confirm.setAttribute('aria-busy', 'false');
      confirm.textContent = 'Remove';
      confirm.disabled = false;
      if (!res.ok) { showError(errorBox, res.error); return; }
      const name = target.name;
      const tbody = target.row && target.row.parentElement;
      if (target.row) target.row.remove();
      target = null;
      dlg.close();
      flag('success', '“' + name + '” was removed', 'It was unlinked on Confluence Cloud too.');
      const count = $('#spaces-count');
      const left = tbody ? tbody.rows.length : 0;
      if (count) count.textContent = left + (left === 1 ? ' space' : ' spaces');
      if (tbody && left === 0) setTimeout(() => location.assign('/space-sync'), 1500);
    });
  }

  // ---- After an import ----------------------------------------------------

  const highlighted = $('tr.is-highlighted');
  if (highlighted) {
    highlighted.scrollIntoView({ block: 'center' });
    highlighted.focus({ preventScroll: true });
  }
  if (location.search.includes('imported=')) history.replaceState(null, '', '/space-sync');
})();
