/*
 * Space Sync page (cloud-app), inside the Confluence iframe.
 *
 * Every API call first asks Confluence for a fresh context token
 * (AP.context.getToken) and sends it as "Authorization: JWT <token>"; no
 * cookie is ever sent or read (third-party cookies are blocked in the
 * iframe). Only AP.context.getToken is used from the Connect API (plus the
 * sizeToParent option on the all.js tag): flags, dialogs and menus are drawn
 * here with the shared stylesheet, so the page works with Atlassian's
 * all.js and with the simulator's stand-in, which throws on anything else.
 *
 * Text from the server is always inserted as text, never as HTML.
 */
(function () {
  'use strict';

  var app = document.getElementById('app');
  if (!app) {
    return;
  }
  var cfg = {
    apiBase: app.dataset.apiBase || '',
    siteName: app.dataset.siteName || '',
    subjectPrefix: app.dataset.subjectPrefix || '',
    maxPermissions: parseInt(app.dataset.maxPermissions, 10) || 50,
    maxName: parseInt(app.dataset.maxName, 10) || 255,
    maxMessage: parseInt(app.dataset.maxMessage, 10) || 1000,
    maxSubject: parseInt(app.dataset.maxSubject, 10) || 150
  };

  var TOKEN_TIMEOUT_MS = 15000;
  var POLL_LIMIT_MS = 120000;

  /* ---------- small DOM helpers ---------- */

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, props) {
    var e = document.createElement(tag);
    if (props) {
      Object.keys(props).forEach(function (k) {
        var v = props[k];
        if (v === undefined || v === null || v === false) {
          return;
        }
        if (k === 'class') {
          e.className = v;
        } else if (k === 'text') {
          e.textContent = v;
        } else if (k.slice(0, 2) === 'on') {
          e.addEventListener(k.slice(2), v);
        } else {
          e.setAttribute(k, v === true ? '' : String(v));
        }
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      append(e, arguments[i]);
    }
    return e;
  }

  function append(parent, child) {
    if (child === null || child === undefined || child === false) {
      return;
    }
    if (Array.isArray(child)) {
      child.forEach(function (c) { append(parent, c); });
      return;
    }
    parent.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }

  var SVG_NS = 'http://www.w3.org/2000/svg';
  var ICON_PATHS = {
    success: 'M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm-1.2 14.2-4-4 1.4-1.4 2.6 2.6 5.4-5.4 1.4 1.4-6.8 6.8z',
    error: 'M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm1 15h-2v-2h2v2zm0-4h-2V7h2v6z',
    warning: 'M12 2 1 21h22L12 2zm1 16h-2v-2h2v2zm0-4h-2v-4h2v4z',
    info: 'M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm1 15h-2v-6h2v6zm0-8h-2V7h2v2z'
  };

  function icon(kind, cls) {
    var svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    svg.setAttribute('class', cls);
    var path = document.createElementNS(SVG_NS, 'path');
    path.setAttribute('fill', 'currentColor');
    path.setAttribute('d', ICON_PATHS[kind] || ICON_PATHS.info);
    svg.appendChild(path);
    return svg;
  }

  function spinner() {
    return el('span', { 'class': 'spinner', 'aria-hidden': 'true' });
  }

  function progress(text) {
    return el('span', { 'class': 'progress' }, spinner(), el('span', { text: text }));
  }

  function formatDate(s) {
    if (!s) {
      return '';
    }
    var d = new Date(s);
    if (isNaN(d.getTime())) {
      return '';
    }
    try {
      return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
    } catch (e) {
      return d.toLocaleString();
    }
  }

  function plural(n, one, many) {
    return n + ' ' + (n === 1 ? one : many);
  }

  function enc(s) {
    return encodeURIComponent(s);
  }

  function lozenge(status) {
    if (status === 'SYNCED') {
      return el('span', { 'class': 'lozenge lozenge--success', text: 'Synced' });
    }
    return el('span', { 'class': 'lozenge', text: 'Not sync yet' });
  }

  function avatar(key, name) {
    var h = 0;
    for (var i = 0; i < key.length; i++) {
      h = (h * 31 + key.charCodeAt(i)) % 997;
    }
    var n = h % 6;
    var letter = (name || key.replace(/^~/, '') || '?').charAt(0).toUpperCase();
    return el('span', { 'class': 'ss-avatar' + (n ? ' ss-avatar--' + n : ''), 'aria-hidden': 'true', text: letter });
  }

  function typeLabel(t) {
    var names = { global: 'Global', personal: 'Personal', collaboration: 'Collaboration', knowledge_base: 'Knowledge base' };
    return names[t] || (t ? t.charAt(0).toUpperCase() + t.slice(1).replace(/_/g, ' ') : '');
  }

  /* ---------- the API ---------- */

  function ApiError(code, message, extra) {
    this.name = 'ApiError';
    this.code = code;
    this.message = message;
    extra = extra || {};
    this.fields = extra.fields || null;
    this.retryAfter = extra.retryAfter || 0;
    this.requestId = extra.requestId || '';
    this.status = extra.status || 0;
  }
  ApiError.prototype = Object.create(Error.prototype);

  var SIGN_IN_MESSAGE = 'Confluence did not give Space Sync a sign-in token. Reload the page; if it keeps happening, sign in to Confluence again.';

  // contextToken asks Confluence for a fresh context token. The callback
  // form works with every all.js; the promise form is used when offered.
  function contextToken() {
    return new Promise(function (resolve, reject) {
      var done = false;
      var timer = setTimeout(function () { fail(); }, TOKEN_TIMEOUT_MS);
      function ok(t) {
        if (!done && typeof t === 'string' && t !== '') {
          done = true;
          clearTimeout(timer);
          resolve(t);
        }
      }
      function fail() {
        if (!done) {
          done = true;
          clearTimeout(timer);
          reject(new ApiError('unauthorized', SIGN_IN_MESSAGE));
        }
      }
      try {
        var p = window.AP.context.getToken(ok);
        if (p && typeof p.then === 'function') {
          p.then(ok, fail);
        }
      } catch (e) {
        fail();
      }
    });
  }

  function statusCode(status) {
    switch (status) {
      case 401: return 'unauthorized';
      case 403: return 'forbidden';
      case 404: return 'not_found';
      case 413: return 'payload_too_large';
      case 422: return 'validation_failed';
      case 429: return 'rate_limited';
      case 503: return 'unavailable';
    }
    return 'internal';
  }

  // api calls the iframe API with a fresh context token. With raw it
  // returns the Response of a successful call; otherwise the decoded JSON
  // (null for 204). Failures throw an ApiError with the server's code.
  function api(method, path, body, raw) {
    return contextToken().then(function (token) {
      var headers = { 'Authorization': 'JWT ' + token, 'Accept': raw ? '*/*' : 'application/json' };
      var init = { method: method, headers: headers, credentials: 'omit', cache: 'no-store', redirect: 'error', referrerPolicy: 'no-referrer' };
      if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
      return fetch(cfg.apiBase + path, init).catch(function () {
        throw new ApiError('network', 'Space Sync could not be reached. Check your connection and try again.');
      });
    }).then(function (res) {
      if (res.ok) {
        if (raw) {
          return res;
        }
        if (res.status === 204) {
          return null;
        }
        return res.json();
      }
      return res.json().catch(function () { return null; }).then(function (data) {
        var e = data && data.error;
        var retry = parseInt(res.headers.get('Retry-After'), 10);
        throw new ApiError((e && e.code) || statusCode(res.status),
          (e && e.message) || 'Space Sync answered with an error (' + res.status + '). Try again.',
          { fields: e && e.fields, retryAfter: isNaN(retry) ? 0 : retry, requestId: e && e.requestId, status: res.status });
      });
    });
  }

  var ERROR_TITLES = {
    unauthorized: 'Your session could not be verified',
    forbidden: 'You do not have permission',
    not_found: 'Not found',
    validation_failed: 'Check what you entered',
    rate_limited: 'Too many requests',
    unavailable: 'Try again in a minute',
    network: 'Space Sync cannot be reached',
    mail_rejected: 'The email was refused',
    payload_too_large: 'Too large',
    internal: 'Something went wrong'
  };

  function waitText(seconds) {
    if (seconds >= 120) {
      return 'Try again in ' + Math.ceil(seconds / 60) + ' minutes.';
    }
    return 'Try again in ' + plural(seconds, 'second', 'seconds') + '.';
  }

  function errorText(err) {
    if (!(err instanceof ApiError)) {
      return 'Something went wrong in this page. Reload it and try again.';
    }
    var m = err.message || '';
    if (err.code === 'unauthorized' && m !== SIGN_IN_MESSAGE) {
      m = 'Your Confluence session could not be verified. Reload the page; if it keeps happening, sign in to Confluence again.';
    }
    if (err.code === 'rate_limited' && err.retryAfter > 0) {
      m += ' ' + waitText(err.retryAfter);
    }
    return m;
  }

  function errorTitle(err) {
    return (err instanceof ApiError && ERROR_TITLES[err.code]) || ERROR_TITLES.internal;
  }

  /* ---------- flags ---------- */

  var flags = $('flags');

  function flag(kind, title, text) {
    var f = el('div', { 'class': 'flag flag--' + kind, role: kind === 'error' ? 'alert' : 'status' });
    var close = el('button', { type: 'button', 'class': 'btn btn--subtle flag__close', 'aria-label': 'Dismiss' }, '×');
    close.addEventListener('click', function () { f.remove(); });
    append(f, [icon(kind, 'flag__icon'),
      el('div', { 'class': 'flag__body' }, el('p', { 'class': 'flag__title', text: title }), text ? el('p', { text: text }) : null),
      close]);
    flags.appendChild(f);
    while (flags.children.length > 4) {
      flags.firstChild.remove();
    }
    if (kind === 'success' || kind === 'info') {
      setTimeout(function () { f.remove(); }, 10000);
    }
    return f;
  }

  function flagError(err, title) {
    flag('error', title || errorTitle(err), errorText(err));
  }

  /* ---------- buttons that wait ---------- */

  function busy(btn, label) {
    if (!btn.dataset.label) {
      btn.dataset.label = btn.textContent;
    }
    btn.disabled = true;
    btn.setAttribute('aria-busy', 'true');
    btn.replaceChildren(spinner(), document.createTextNode(' ' + label));
  }

  function idle(btn, label) {
    btn.disabled = false;
    btn.removeAttribute('aria-busy');
    btn.textContent = label || btn.dataset.label || btn.textContent;
    delete btn.dataset.label;
  }

  /* ---------- dialogs ---------- */

  function focusables(root) {
    return Array.prototype.filter.call(root.querySelectorAll(
      'a[href], button:not([disabled]), input:not([disabled]), textarea:not([disabled]), select:not([disabled]), [tabindex]:not([tabindex="-1"])'),
    function (e) { return !e.hidden && e.offsetParent !== null; });
  }

  function setupDialog(dlg) {
    dlg.addEventListener('keydown', function (ev) {
      if (ev.key !== 'Tab') {
        return;
      }
      var items = focusables(dlg);
      if (!items.length) {
        ev.preventDefault();
        return;
      }
      var first = items[0];
      var last = items[items.length - 1];
      if (ev.shiftKey && document.activeElement === first) {
        ev.preventDefault();
        last.focus();
      } else if (!ev.shiftKey && document.activeElement === last) {
        ev.preventDefault();
        first.focus();
      }
    });
    dlg.addEventListener('close', function () {
      if (typeof dlg.onClosed === 'function') {
        dlg.onClosed();
      }
      var back = dlg.opener;
      dlg.opener = null;
      if (back && document.contains(back) && !back.disabled && back.offsetParent !== null) {
        back.focus();
      } else {
        var h = currentHeading();
        if (h) {
          h.focus();
        }
      }
    });
    Array.prototype.forEach.call(dlg.querySelectorAll('[data-close]'), function (b) {
      b.addEventListener('click', function () { dlg.close(); });
    });
  }

  function openDialog(dlg, opener, focusEl) {
    dlg.opener = opener || document.activeElement;
    if (!dlg.open) {
      dlg.showModal();
    }
    var target = focusEl || focusables(dlg)[0];
    if (target) {
      target.focus();
    }
  }

  // A field's error goes away as soon as the field is edited.
  document.addEventListener('input', function (ev) {
    var t = ev.target;
    if (!t || !t.getAttribute || t.getAttribute('aria-invalid') !== 'true') {
      return;
    }
    t.removeAttribute('aria-invalid');
    (t.getAttribute('aria-describedby') || '').split(/\s+/).forEach(function (id) {
      var p = id && $(id);
      if (p && p.classList.contains('field__error')) {
        p.hidden = true;
        p.textContent = '';
      }
    });
  });

  function clearFormErrors(form) {
    Array.prototype.forEach.call(form.querySelectorAll('.field__error'), function (p) {
      p.hidden = true;
      p.textContent = '';
    });
    Array.prototype.forEach.call(form.querySelectorAll('[aria-invalid]'), function (i) {
      i.removeAttribute('aria-invalid');
    });
    var box = form.querySelector('.ss-form-error');
    if (box) {
      box.hidden = true;
      box.textContent = '';
    }
  }

  // showFormError puts validation messages next to their fields (ids
  // <prefix>-<field>-error) and anything else in the form's error box.
  function showFormError(form, prefix, err) {
    clearFormErrors(form);
    var firstInvalid = null;
    var unplaced = [];
    if (err instanceof ApiError && err.code === 'validation_failed' && err.fields) {
      Object.keys(err.fields).forEach(function (field) {
        var p = $(prefix + '-' + field + '-error');
        var input = form.querySelector('[name="' + field + '"]') || $(prefix + '-' + field + '-input');
        if (p) {
          p.textContent = err.fields[field];
          p.hidden = false;
          if (input) {
            input.setAttribute('aria-invalid', 'true');
            firstInvalid = firstInvalid || input;
          }
        } else {
          unplaced.push(err.fields[field]);
        }
      });
      if (!unplaced.length) {
        if (firstInvalid) {
          firstInvalid.focus();
        }
        return;
      }
    }
    var box = form.querySelector('.ss-form-error');
    box.textContent = unplaced.length ? unplaced.join(' ') : errorText(err);
    box.hidden = false;
    if (firstInvalid) {
      firstInvalid.focus();
    }
  }

  function fieldError(form, prefix, field, text) {
    showFormError(form, prefix, new ApiError('validation_failed', text, { fields: (function () { var o = {}; o[field] = text; return o; })() }));
  }

  /* ---------- the actions menu ---------- */

  var menu = $('actions-menu');
  var menuButton = null;

  function menuItems() {
    return Array.prototype.slice.call(menu.querySelectorAll('[role="menuitem"]'));
  }

  function openMenu(button, items) {
    closeMenu(false);
    menu.replaceChildren();
    items.forEach(function (it) {
      if (it.separator) {
        menu.appendChild(el('li', { role: 'separator', 'class': 'ss-menu__sep' }));
        return;
      }
      var b = el('button', { type: 'button', role: 'menuitem', tabindex: '-1', 'class': 'ss-menu__item' + (it.danger ? ' ss-menu__item--danger' : '') }, it.label);
      b.addEventListener('click', function () {
        closeMenu(false);
        it.run(button);
      });
      menu.appendChild(el('li', { role: 'none' }, b));
    });
    menuButton = button;
    button.setAttribute('aria-expanded', 'true');
    menu.hidden = false;
    var r = button.getBoundingClientRect();
    var left = r.right + window.scrollX - menu.offsetWidth;
    menu.style.left = Math.max(8, left) + 'px';
    menu.style.top = (r.bottom + window.scrollY + 4) + 'px';
    var first = menuItems()[0];
    if (first) {
      first.focus();
    }
  }

  function closeMenu(refocus) {
    if (!menuButton) {
      return;
    }
    var b = menuButton;
    menuButton = null;
    b.setAttribute('aria-expanded', 'false');
    menu.hidden = true;
    if (refocus) {
      b.focus();
    }
  }

  menu.addEventListener('keydown', function (ev) {
    var items = menuItems();
    var i = items.indexOf(document.activeElement);
    switch (ev.key) {
      case 'ArrowDown':
        ev.preventDefault();
        items[(i + 1) % items.length].focus();
        break;
      case 'ArrowUp':
        ev.preventDefault();
        items[(i - 1 + items.length) % items.length].focus();
        break;
      case 'Home':
        ev.preventDefault();
        items[0].focus();
        break;
      case 'End':
        ev.preventDefault();
        items[items.length - 1].focus();
        break;
      case 'Escape':
        ev.preventDefault();
        closeMenu(true);
        break;
      case 'Tab':
        ev.preventDefault();
        closeMenu(true);
        break;
    }
  });

  document.addEventListener('mousedown', function (ev) {
    if (menuButton && !menu.contains(ev.target) && ev.target !== menuButton && !menuButton.contains(ev.target)) {
      closeMenu(false);
    }
  });

  function menuButtonFor(label, items) {
    var b = el('button', { type: 'button', 'class': 'btn btn--subtle btn--compact ss-actions', 'aria-haspopup': 'menu', 'aria-expanded': 'false', 'aria-label': label },
      el('span', { 'aria-hidden': 'true', text: '•••' }));
    b.addEventListener('click', function () {
      if (menuButton === b) {
        closeMenu(true);
      } else {
        openMenu(b, items());
      }
    });
    b.addEventListener('keydown', function (ev) {
      if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
        ev.preventDefault();
        openMenu(b, items());
        if (ev.key === 'ArrowUp') {
          var all = menuItems();
          all[all.length - 1].focus();
        }
      }
    });
    return b;
  }

  /* ---------- views ---------- */

  var state = {
    query: '',
    cursors: [''],
    page: 0,
    next: '',
    spacesSeq: 0,
    space: null,
    canAdmin: false,
    syncs: [],
    syncsSeq: 0,
    returnTo: ''
  };

  function currentHeading() {
    return $('view-space').hidden ? $('spaces-title') : $('space-title');
  }

  function setStatus(box, content, retry) {
    box.replaceChildren();
    append(box, content);
    if (retry) {
      var b = el('button', { type: 'button', 'class': 'btn btn--link' }, 'Try again');
      b.addEventListener('click', retry);
      append(box, [' ', b]);
    }
  }

  function errorStatus(err) {
    return el('span', { 'class': 'text-danger' }, el('strong', { text: errorTitle(err) + '. ' }), errorText(err));
  }

  /* The space list */

  function loadSpaces(focusKey) {
    var seq = ++state.spacesSeq;
    var status = $('spaces-status');
    var prev = $('spaces-prev');
    var next = $('spaces-next');
    prev.disabled = true;
    next.disabled = true;
    $('spaces-table').setAttribute('aria-busy', 'true');
    setStatus(status, progress(state.query ? 'Searching spaces…' : 'Loading spaces…'));
    var q = '?query=' + enc(state.query) + '&cursor=' + enc(state.cursors[state.page]);
    return api('GET', '/api/ui/spaces' + q).then(function (data) {
      if (seq !== state.spacesSeq) {
        return;
      }
      $('spaces-table').removeAttribute('aria-busy');
      state.next = data.next || '';
      renderSpaces(data.results || [], focusKey);
      prev.disabled = state.page === 0;
      next.disabled = !state.next;
      $('spaces-page').textContent = (state.page > 0 || state.next) ? 'Page ' + (state.page + 1) : '';
      var shown = (data.results || []).length;
      if (shown === 0 && state.next) {
        setStatus(status, 'None of the spaces checked so far are ones you can see. Choose Next to look further.');
      } else if (shown === 0) {
        setStatus(status, '');
      } else {
        setStatus(status, state.query ? 'Spaces matching “' + state.query + '”' : '');
      }
    }, function (err) {
      if (seq !== state.spacesSeq) {
        return;
      }
      $('spaces-table').removeAttribute('aria-busy');
      prev.disabled = state.page === 0;
      setStatus(status, errorStatus(err), function () { loadSpaces(); });
    });
  }

  function syncsSummary(s) {
    if (!s || !s.total) {
      return el('span', { 'class': 'text-subtlest', text: 'None' });
    }
    var parts = [el('span', { text: plural(s.total, 'sync', 'syncs') })];
    if (s.synced) {
      parts.push(' ', el('span', { 'class': 'lozenge lozenge--success', text: s.synced + ' synced' }));
    }
    if (s.total > s.synced) {
      parts.push(' ', el('span', { 'class': 'lozenge', text: (s.total - s.synced) + ' not sync yet' }));
    }
    return parts;
  }

  function renderSpaces(list, focusKey) {
    var body = $('spaces-body');
    body.replaceChildren();
    $('spaces-empty').hidden = list.length > 0 || !!state.next;
    $('spaces-table').hidden = list.length === 0;
    $('spaces-empty-text').textContent = state.query
      ? 'No space you can see matches “' + state.query + '”. Check the spelling, or search by the space key.'
      : 'There are no spaces you can see on this site.';
    var focusEl = null;
    list.forEach(function (sp) {
      var open = el('button', { type: 'button', 'class': 'btn btn--compact', 'aria-label': (sp.canAdmin ? 'Edit sync settings of ' : 'View the syncs of ') + sp.name },
        sp.canAdmin ? 'Edit sync settings' : 'View syncs');
      open.addEventListener('click', function () { openSpace(sp); });
      if (focusKey && sp.key === focusKey) {
        focusEl = open;
      }
      var type = [typeLabel(sp.type)];
      if (sp.status === 'archived') {
        type.push(' ', el('span', { 'class': 'lozenge lozenge--moved', text: 'Archived' }));
      }
      body.appendChild(el('tr', null,
        el('td', null, el('span', { 'class': 'ss-space' }, avatar(sp.key, sp.name), el('span', { 'class': 'ss-space__name', text: sp.name }))),
        el('td', null, el('code', { text: sp.key })),
        el('td', null, type),
        el('td', null, syncsSummary(sp.syncs)),
        el('td', { 'class': 'table__actions' }, open)));
    });
    if (focusEl) {
      focusEl.focus();
    }
  }

  var searchTimer = null;

  function search(now) {
    clearTimeout(searchTimer);
    var run = function () {
      var q = $('space-query').value.trim();
      if (q === state.query && !now) {
        return;
      }
      state.query = q;
      state.cursors = [''];
      state.page = 0;
      loadSpaces();
    };
    if (now) {
      run();
    } else {
      searchTimer = setTimeout(run, 300);
    }
  }

  $('space-search').addEventListener('submit', function (ev) {
    ev.preventDefault();
    search(true);
  });
  $('space-query').addEventListener('input', function () { search(false); });
  $('spaces-next').addEventListener('click', function () {
    if (!state.next) {
      return;
    }
    state.cursors[state.page + 1] = state.next;
    state.page++;
    loadSpaces();
  });
  $('spaces-prev').addEventListener('click', function () {
    if (state.page === 0) {
      return;
    }
    state.page--;
    loadSpaces();
  });

  /* One space's syncs */

  function openSpace(sp) {
    closeMenu(false);
    state.space = sp;
    state.canAdmin = !!sp.canAdmin;
    state.syncs = [];
    $('view-spaces').hidden = true;
    $('view-space').hidden = false;
    $('crumb-space').textContent = sp.name;
    $('space-title').textContent = sp.name;
    $('space-subtitle').textContent = 'Space key ' + sp.key + ' · ' + typeLabel(sp.type) + ' space. Each sync pairs this space with one Confluence Data Center space.';
    $('create-sync').hidden = true;
    $('space-readonly').hidden = true;
    $('syncs-table').hidden = true;
    $('syncs-empty').hidden = true;
    $('syncs-body').replaceChildren();
    $('space-title').focus();
    window.scrollTo(0, 0);
    loadSyncs();
  }

  function backToSpaces() {
    closeMenu(false);
    var key = state.space && state.space.key;
    state.space = null;
    $('view-space').hidden = true;
    $('view-spaces').hidden = false;
    loadSpaces(key);
  }

  $('back-to-spaces').addEventListener('click', backToSpaces);

  function loadSyncs(highlightID) {
    var sp = state.space;
    if (!sp) {
      return Promise.resolve();
    }
    var seq = ++state.syncsSeq;
    var status = $('syncs-status');
    setStatus(status, progress('Loading syncs…'));
    $('syncs-table').setAttribute('aria-busy', 'true');
    return api('GET', '/api/ui/spaces/' + enc(sp.key) + '/syncs').then(function (data) {
      if (seq !== state.syncsSeq || state.space !== sp) {
        return;
      }
      $('syncs-table').removeAttribute('aria-busy');
      state.canAdmin = !!data.canAdmin;
      state.syncs = data.results || [];
      $('create-sync').hidden = !state.canAdmin;
      $('space-readonly').hidden = state.canAdmin;
      setStatus(status, '');
      renderSyncs(highlightID);
    }, function (err) {
      if (seq !== state.syncsSeq) {
        return;
      }
      $('syncs-table').removeAttribute('aria-busy');
      setStatus(status, errorStatus(err), function () { loadSyncs(highlightID); });
    });
  }

  function includesText(s) {
    if (s.syncComments && s.syncLabels) {
      return 'Pages, comments and labels';
    }
    if (s.syncComments) {
      return 'Pages and comments';
    }
    if (s.syncLabels) {
      return 'Pages and labels';
    }
    return 'Pages only';
  }

  function principalTags(perms) {
    if (!perms || !perms.length) {
      return el('span', { 'class': 'text-subtlest', text: 'No one chosen' });
    }
    var ul = el('ul', { 'class': 'tag-list' });
    perms.slice(0, 3).forEach(function (p) {
      ul.appendChild(el('li', { 'class': 'tag', title: p.type === 'group' ? 'Group' : 'User' }, p.name));
    });
    if (perms.length > 3) {
      ul.appendChild(el('li', { 'class': 'tag', title: perms.slice(3).map(function (p) { return p.name; }).join(', ') }, '+' + (perms.length - 3) + ' more'));
    }
    return ul;
  }

  function syncActions(s) {
    return function () {
      var items = [];
      if (state.canAdmin && s.status !== 'SYNCED') {
        items.push({ label: 'Send Token', run: function (b) { openSend(s, b); } });
        items.push({ label: 'Download Token', run: function (b) { openDownload(s, b); } });
      }
      items.push({ label: 'View details', run: function (b) { openDetails(s, b); } });
      if (state.canAdmin) {
        items.push({ separator: true });
        items.push({ label: 'Revoke tokens', run: function (b) { confirmRevoke(s, b); } });
        items.push({ label: 'Delete sync', danger: true, run: function (b) { confirmDelete(s, b); } });
      }
      return items;
    };
  }

  function renderSyncs(highlightID) {
    var body = $('syncs-body');
    body.replaceChildren();
    var list = state.syncs;
    $('syncs-table').hidden = list.length === 0;
    $('syncs-empty').hidden = list.length > 0;
    $('syncs-empty-text').textContent = state.canAdmin
      ? 'This space is not paired with Confluence Data Center yet. Choose Create New Sync to start.'
      : 'This space is not paired with Confluence Data Center.';
    var focusEl = null;
    list.forEach(function (s) {
      var actions = menuButtonFor('Actions for ' + s.name, syncActions(s));
      actions.dataset.syncId = s.id;
      var tr = el('tr', { 'data-sync-id': s.id, 'class': s.id === highlightID ? 'is-highlighted' : null },
        el('td', null, el('strong', { text: s.name })),
        el('td', null, principalTags(s.permissions)),
        el('td', null, includesText(s)),
        el('td', null, lozenge(s.status),
          s.linkedTo ? el('div', { 'class': 'text-subtle ss-linked-to', title: s.linkedTo.baseUrl || null, text: 'with ' + s.linkedTo.name }) : null),
        el('td', { 'class': 'ss-nowrap' }, formatDate(s.createdAt)),
        el('td', { 'class': 'table__actions' }, actions));
      body.appendChild(tr);
      if (s.id === highlightID) {
        focusEl = actions;
      }
    });
    if (focusEl) {
      focusEl.focus();
    }
  }

  function actionsButton(syncID) {
    return document.querySelector('.ss-actions[data-sync-id="' + (window.CSS && CSS.escape ? CSS.escape(syncID) : syncID) + '"]');
  }

  /* ---------- Create New Sync ---------- */

  var create = {
    dlg: $('dlg-create'),
    form: $('form-create'),
    chosen: [],
    touched: false,
    seq: 0,
    options: [],
    active: -1,
    searchTimer: null
  };
  setupDialog(create.dlg);

  function principalKey(p) {
    return p.type + ':' + p.id;
  }

  function renderChosen() {
    var ul = $('create-perms-chosen');
    ul.replaceChildren();
    create.chosen.forEach(function (p, i) {
      var remove = el('button', { type: 'button', 'class': 'ss-tag__remove', 'aria-label': 'Remove ' + p.name }, '×');
      remove.addEventListener('click', function () {
        create.chosen.splice(i, 1);
        create.touched = true;
        renderChosen();
        $('create-perms-input').focus();
      });
      ul.appendChild(el('li', { 'class': 'tag' },
        el('span', { 'class': 'ss-tag__kind', text: p.type === 'group' ? 'Group' : 'User' }), ' ', el('span', { text: p.name }), remove));
    });
    $('create-perms-status').textContent = create.chosen.length
      ? plural(create.chosen.length, 'user or group', 'users and groups') + ' chosen (at most ' + cfg.maxPermissions + ').'
      : 'No one chosen yet.';
  }

  function closeListbox() {
    var input = $('create-perms-input');
    $('create-perms-list').hidden = true;
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
    create.active = -1;
  }

  function setActive(i) {
    var list = $('create-perms-list');
    var opts = list.querySelectorAll('[role="option"]');
    create.active = i;
    Array.prototype.forEach.call(opts, function (o, j) {
      o.setAttribute('aria-selected', j === i ? 'true' : 'false');
    });
    if (i >= 0 && opts[i]) {
      $('create-perms-input').setAttribute('aria-activedescendant', opts[i].id);
      opts[i].scrollIntoView({ block: 'nearest' });
    }
  }

  function choose(p) {
    var keys = create.chosen.map(principalKey);
    if (keys.indexOf(principalKey(p)) >= 0) {
      $('create-perms-status').textContent = p.name + ' is already chosen.';
    } else if (create.chosen.length >= cfg.maxPermissions) {
      $('create-perms-status').textContent = 'You can choose at most ' + cfg.maxPermissions + ' users and groups. Remove one first.';
    } else {
      create.chosen.push({ type: p.type, id: p.id, name: p.name });
      create.touched = true;
      renderChosen();
    }
    $('create-perms-input').value = '';
    closeListbox();
  }

  function renderOptions(results, text) {
    var list = $('create-perms-list');
    list.replaceChildren();
    create.options = results;
    if (!results.length) {
      list.appendChild(el('li', { 'class': 'ss-option ss-option--empty', role: 'option', 'aria-disabled': 'true', id: 'perm-opt-none', text: 'No users or groups match “' + text + '”.' }));
    }
    results.forEach(function (p, i) {
      var o = el('li', { 'class': 'ss-option', role: 'option', id: 'perm-opt-' + i, 'aria-selected': 'false' },
        el('span', { text: p.name }), el('span', { 'class': 'ss-option__kind', text: p.type === 'group' ? 'Group' : 'User' }));
      o.addEventListener('mousedown', function (ev) {
        ev.preventDefault();
        choose(p);
      });
      list.appendChild(o);
    });
    list.hidden = false;
    $('create-perms-input').setAttribute('aria-expanded', 'true');
    setActive(results.length ? 0 : -1);
  }

  function searchPrincipals() {
    var text = $('create-perms-input').value.trim();
    var seq = ++create.seq;
    if (!text) {
      closeListbox();
      renderChosen();
      return;
    }
    $('create-perms-status').replaceChildren(progress('Searching users and groups…'));
    api('GET', '/api/ui/principals?query=' + enc(text)).then(function (data) {
      if (seq !== create.seq) {
        return;
      }
      renderChosen();
      renderOptions(data.results || [], text);
    }, function (err) {
      if (seq !== create.seq) {
        return;
      }
      closeListbox();
      $('create-perms-status').textContent = errorTitle(err) + '. ' + errorText(err);
    });
  }

  $('create-perms-input').addEventListener('input', function () {
    clearTimeout(create.searchTimer);
    create.searchTimer = setTimeout(searchPrincipals, 250);
  });
  $('create-perms-input').addEventListener('keydown', function (ev) {
    var open = !$('create-perms-list').hidden;
    var n = create.options.length;
    switch (ev.key) {
      case 'ArrowDown':
        ev.preventDefault();
        if (!open) {
          searchPrincipals();
        } else if (n) {
          setActive((create.active + 1) % n);
        }
        break;
      case 'ArrowUp':
        if (open && n) {
          ev.preventDefault();
          setActive((create.active - 1 + n) % n);
        }
        break;
      case 'Enter':
        ev.preventDefault();
        if (open && create.active >= 0 && create.options[create.active]) {
          choose(create.options[create.active]);
        }
        break;
      case 'Escape':
        if (open) {
          ev.preventDefault();
          ev.stopPropagation();
          closeListbox();
        }
        break;
    }
  });
  // Enter in the picker chooses; it never submits the form (some input
  // methods deliver the keypress even when the keydown was handled).
  $('create-perms-input').addEventListener('keypress', function (ev) {
    if (ev.key === 'Enter') {
      ev.preventDefault();
    }
  });
  $('create-perms-input').addEventListener('blur', function () {
    setTimeout(closeListbox, 150);
  });

  function openCreate(opener) {
    var sp = state.space;
    var form = create.form;
    form.reset();
    clearFormErrors(form);
    idle($('create-submit'), 'Create');
    create.chosen = [];
    create.touched = false;
    create.options = [];
    closeListbox();
    renderChosen();
    $('create-name').value = sp.name;
    $('dlg-create-title').textContent = 'Create New Sync for ' + sp.name;
    openDialog(create.dlg, opener, $('create-name'));
    $('create-name').select();
    $('create-perms-status').replaceChildren(progress('Adding the space’s admins…'));
    api('GET', '/api/ui/spaces/' + enc(sp.key) + '/default-permissions').then(function (data) {
      if (create.touched || state.space !== sp) {
        renderChosen();
        return;
      }
      create.chosen = (data.results || []).slice(0, cfg.maxPermissions);
      renderChosen();
    }, function (err) {
      renderChosen();
      $('create-perms-status').textContent = 'The space’s admins could not be added: ' + errorText(err) + ' Search for users and groups instead.';
    });
  }

  $('create-sync').addEventListener('click', function () { openCreate($('create-sync')); });

  create.form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var form = create.form;
    var btn = $('create-submit');
    var sp = state.space;
    if (btn.disabled || !sp) {
      return;
    }
    clearFormErrors(form);
    var name = $('create-name').value.trim();
    if (!name) {
      fieldError(form, 'create', 'name', 'Enter a name for the sync.');
      return;
    }
    busy(btn, 'Creating…');
    api('POST', '/api/ui/spaces/' + enc(sp.key) + '/syncs', {
      name: name,
      permissions: create.chosen,
      syncComments: $('create-comments').checked,
      syncLabels: $('create-labels').checked
    }).then(function (data) {
      idle(btn, 'Create');
      create.dlg.close();
      flag('success', 'Sync created', '“' + data.sync.name + '” is ready. Send or download its token from the Actions menu.');
      if (state.space === sp) {
        loadSyncs(data.sync.id);
      }
    }, function (err) {
      idle(btn, 'Create');
      if (err.fields && err.fields.permissions) {
        err.fields.perms = err.fields.permissions;
        delete err.fields.permissions;
      }
      showFormError(form, 'create', err);
    });
  });

  /* ---------- Send Token ---------- */

  var send = { dlg: $('dlg-send'), form: $('form-send'), sync: null, following: null };
  setupDialog(send.dlg);

  function defaultSubject(spaceName) {
    var n = (spaceName || '').trim();
    if (!n) {
      return 'Space Sync token';
    }
    if (n.length > 100) {
      n = n.slice(0, 100) + '…';
    }
    return 'Space Sync token for the space ' + n;
  }

  function setSendInputs(enabled) {
    ['send-to', 'send-subject', 'send-message'].forEach(function (id) {
      $(id).disabled = !enabled;
    });
  }

  function sendProgress(kind, text) {
    var box = $('send-progress');
    box.className = 'ss-progress' + (kind && kind !== 'wait' ? ' ss-progress--' + kind : '');
    box.replaceChildren(kind === 'wait' ? spinner() : icon(kind, 'ss-progress__icon'), el('span', { text: text }));
    box.hidden = false;
    // The dialog body scrolls: bring the status into view.
    if (box.scrollIntoView) {
      box.scrollIntoView({ block: 'nearest' });
    }
  }

  function openSend(s, opener) {
    send.sync = s;
    send.following = null;
    send.form.reset();
    clearFormErrors(send.form);
    setSendInputs(true);
    $('send-progress').hidden = true;
    $('send-submit').hidden = false;
    idle($('send-submit'), 'Send');
    $('send-cancel').textContent = 'Cancel';
    $('send-intro').textContent = 'Email a one-time token for “' + s.name + '” (space ' + s.spaceKey + ') to the Data Center admin. A new token is made for this email; it works once and expires 7 days after it is sent.';
    $('send-subject').value = defaultSubject(s.spaceName);
    openDialog(send.dlg, opener, $('send-to'));
  }

  send.form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var btn = $('send-submit');
    var s = send.sync;
    if (btn.disabled || btn.hidden || !s) {
      return;
    }
    clearFormErrors(send.form);
    var to = $('send-to').value.trim();
    if (!to) {
      fieldError(send.form, 'send', 'to', 'Enter the recipient’s email address.');
      return;
    }
    busy(btn, 'Sending…');
    api('POST', '/api/ui/syncs/' + enc(s.id) + '/token-emails', {
      to: to,
      subject: $('send-subject').value,
      message: $('send-message').value
    }).then(function (data) {
      var email = data.email;
      btn.hidden = true;
      idle(btn, 'Send');
      setSendInputs(false);
      $('send-cancel').textContent = 'Close';
      $('send-cancel').focus();
      sendProgress('wait', 'Queued. Space Sync is sending the token to ' + email.to + '…');
      followEmail(email, s);
    }, function (err) {
      idle(btn, 'Send');
      showFormError(send.form, 'send', err);
    });
  });

  // followEmail polls the email's status until it is sent, failed or saved
  // to the outbox, showing each step in the dialog (when it is still open
  // for this email) and the outcome as a flag.
  function followEmail(email, s) {
    var started = Date.now();
    var delay = 700;
    var errors = 0;
    var token = {};
    send.following = token;
    function shown() {
      return send.dlg.open && send.following === token;
    }
    function tick() {
      api('GET', '/api/ui/token-emails/' + enc(email.id)).then(function (st) {
        errors = 0;
        var to = st.to || email.to;
        switch (st.status) {
          case 'sent':
            var msg = 'The token was sent to ' + to + '. Ask them to check their Inbox and their Spam or Junk folder.';
            if (shown()) {
              sendProgress('success', msg);
            } else {
              flag('success', 'Token sent', msg);
            }
            return;
          case 'outbox':
            var out = 'The email to ' + to + ' was saved to the outbox and not sent: this Space Sync writes emails to files (MAIL_MODE=outbox). Download the token instead, or ask your administrator to set up SendGrid.';
            if (shown()) {
              sendProgress('warning', out);
            } else {
              flag('warning', 'Saved to outbox, not sent', out);
            }
            return;
          case 'failed':
            var why = 'The token was not sent to ' + to + '. ' + (st.reason || 'The email service refused it.');
            if (shown()) {
              sendProgress('error', why);
              setSendInputs(true);
              $('send-submit').hidden = false;
              idle($('send-submit'), 'Send again');
            } else {
              flag('error', 'Token not sent', why);
            }
            return;
        }
        if (Date.now() - started > POLL_LIMIT_MS) {
          var slow = 'The email to ' + to + ' is still waiting to be sent. Space Sync keeps trying; the sync’s details show when it goes out.';
          if (shown()) {
            sendProgress('warning', slow);
          } else {
            flag('warning', 'Still sending', slow);
          }
          return;
        }
        if (shown()) {
          sendProgress('wait', st.reason ? 'Not sent yet: ' + st.reason : 'Sending the token to ' + to + '…');
        }
        delay = Math.min(delay * 1.5, 3000);
        setTimeout(tick, delay);
      }, function (err) {
        if (++errors >= 3 || err.code === 'forbidden' || err.code === 'not_found') {
          var lost = 'Space Sync could not follow the email to ' + email.to + ': ' + errorText(err) + ' The sync’s details show whether it was sent.';
          if (shown()) {
            sendProgress('warning', lost);
          } else {
            flag('warning', 'Email status unknown', lost);
          }
          return;
        }
        setTimeout(tick, 2000);
      });
    }
    setTimeout(tick, delay);
  }

  /* ---------- Download Token ---------- */

  var download = { dlg: $('dlg-download'), form: $('form-download'), sync: null, url: null };
  setupDialog(download.dlg);
  download.dlg.onClosed = function () {
    if (download.url) {
      var u = download.url;
      download.url = null;
      setTimeout(function () { URL.revokeObjectURL(u); }, 1000);
    }
  };

  function fileNameFrom(res, spaceKey) {
    var cd = res.headers.get('Content-Disposition') || '';
    var m = /filename="?([^";]+)"?/i.exec(cd);
    var name = m ? m[1] : '';
    if (!/^[A-Za-z0-9._~-]+$/.test(name)) {
      name = (spaceKey || 'space').replace(/[^A-Za-z0-9_~-]/g, '_').slice(0, 100) + '-space-sync.token';
    }
    return name;
  }

  function openDownload(s, opener) {
    download.sync = s;
    download.form.reset();
    clearFormErrors(download.form);
    $('download-message').disabled = false;
    $('download-result').hidden = true;
    $('download-submit').hidden = false;
    idle($('download-submit'), 'Download');
    $('download-cancel').textContent = 'Cancel';
    $('download-intro').textContent = 'Download a one-time token for “' + s.name + '” (space ' + s.spaceKey + ') and give it to the Data Center admin. A new token is made for each download; it works once and expires 7 days after it is downloaded. Keep it secret: whoever holds it can pair the space.';
    openDialog(download.dlg, opener, $('download-message'));
  }

  download.form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var btn = $('download-submit');
    var s = download.sync;
    if (btn.disabled || btn.hidden || !s) {
      return;
    }
    clearFormErrors(download.form);
    busy(btn, 'Preparing the token…');
    var name;
    var expires;
    api('POST', '/api/ui/syncs/' + enc(s.id) + '/token-downloads', { message: $('download-message').value }, true).then(function (res) {
      name = fileNameFrom(res, s.spaceKey);
      expires = res.headers.get('X-Token-Expires-At');
      return res.blob();
    }).then(function (blob) {
      var file = new Blob([blob], { type: 'application/octet-stream' });
      if (download.url) {
        URL.revokeObjectURL(download.url);
      }
      download.url = URL.createObjectURL(file);
      var a = el('a', { href: download.url, download: name, hidden: true });
      document.body.appendChild(a);
      a.click();
      a.remove();
      btn.hidden = true;
      idle(btn, 'Download');
      $('download-message').disabled = true;
      var again = $('download-again');
      again.href = download.url;
      again.setAttribute('download', name);
      $('download-result-title').textContent = 'Token downloaded as ' + name;
      $('download-result-text').textContent = 'It works once' + (expires ? ' and expires ' + formatDate(expires) : '') +
        '. Give the file to the Data Center admin, who imports it under Space Sync for Confluence. If your browser did not save it, use the link below (it saves the same token).';
      $('download-result').hidden = false;
      $('download-cancel').textContent = 'Close';
      $('download-cancel').focus();
    }).catch(function (err) {
      idle(btn, 'Download');
      showFormError(download.form, 'download', err);
    });
  });

  /* ---------- Revoke tokens and Delete sync ---------- */

  var confirm = { dlg: $('dlg-confirm'), form: $('form-confirm'), run: null };
  setupDialog(confirm.dlg);

  function openConfirm(opts, opener) {
    confirm.run = opts.run;
    clearFormErrors(confirm.form);
    $('dlg-confirm-title').textContent = opts.title;
    $('dlg-confirm-text').textContent = opts.text;
    var btn = $('confirm-submit');
    idle(btn, opts.action);
    btn.className = 'btn ' + (opts.danger ? 'btn--danger' : 'btn--primary');
    openDialog(confirm.dlg, opener, confirm.dlg.querySelector('[data-close]'));
  }

  confirm.form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var btn = $('confirm-submit');
    if (btn.disabled || !confirm.run) {
      return;
    }
    var label = btn.textContent;
    busy(btn, label.replace(/^(\w+)/, function (w) { return w === 'Delete' ? 'Deleting' : w === 'Revoke' ? 'Revoking' : w; }) + '…');
    confirm.run().then(function () {
      idle(btn, label);
      confirm.dlg.close();
    }, function (err) {
      idle(btn, label);
      showFormError(confirm.form, 'confirm', err);
    });
  });

  function confirmRevoke(s, opener) {
    openConfirm({
      title: 'Revoke tokens?',
      text: 'Every unused token of “' + s.name + '” stops working at once, whether it was downloaded or emailed. A token that was already redeemed keeps its link.',
      action: 'Revoke tokens',
      danger: true,
      run: function () {
        return api('POST', '/api/ui/syncs/' + enc(s.id) + '/revocations').then(function () {
          flag('success', 'Tokens revoked', 'The unused tokens of “' + s.name + '” no longer work. Send a new token when you are ready.');
        });
      }
    }, opener);
  }

  function confirmDelete(s, opener) {
    openConfirm({
      title: 'Delete sync?',
      text: '“' + s.name + '” will be deleted. Its unused tokens stop working and, if it is linked, the Data Center instance loses its link. This cannot be undone.',
      action: 'Delete',
      danger: true,
      run: function () {
        return api('DELETE', '/api/ui/syncs/' + enc(s.id)).then(function () {
          flag('success', 'Sync deleted', '“' + s.name + '” was deleted.');
          confirm.dlg.opener = $('space-title');
          return loadSyncs();
        });
      }
    }, opener);
  }

  /* ---------- details ---------- */

  var details = { dlg: $('dlg-details'), seq: 0 };
  setupDialog(details.dlg);

  function dl(rows) {
    var d = el('dl', { 'class': 'details' });
    rows.forEach(function (r) {
      if (r) {
        d.appendChild(el('dt', { text: r[0] }));
        d.appendChild(el('dd', null, r[1]));
      }
    });
    return d;
  }

  function tokenState(t) {
    switch (t.state) {
      case 'used':
        return el('span', { 'class': 'lozenge lozenge--success', text: 'Used ' + formatDate(t.usedAt) });
      case 'revoked':
        var why = { revoked: 'revoked', superseded: 'replaced by a redeemed token', sync_deleted: 'sync deleted' }[t.revokeReason] || 'revoked';
        return el('span', { 'class': 'lozenge lozenge--removed', title: formatDate(t.revokedAt), text: 'Revoked: ' + why });
      case 'expired':
        return el('span', { 'class': 'lozenge', text: 'Expired' });
    }
    return el('span', { 'class': 'lozenge lozenge--inprogress', text: 'Usable' });
  }

  function section(title, content) {
    return el('section', { 'class': 'ss-details-section' }, el('h3', { text: title }), content);
  }

  function table(caption, heads, rows) {
    return el('div', { 'class': 'table-wrap' }, el('table', { 'class': 'table ss-details-table' },
      el('caption', { 'class': 'visually-hidden', text: caption }),
      el('thead', null, el('tr', null, heads.map(function (h) { return el('th', { scope: 'col', text: h }); }))),
      el('tbody', null, rows.map(function (cells) {
        return el('tr', null, cells.map(function (c) { return el('td', null, c); }));
      }))));
  }

  function renderDetails(d) {
    var s = d.sync;
    var body = $('details-body');
    body.replaceChildren();
    var perms = s.permissions && s.permissions.length
      ? el('ul', { 'class': 'tag-list' }, s.permissions.map(function (p) { return el('li', { 'class': 'tag' }, (p.type === 'group' ? 'Group: ' : '') + p.name); }))
      : el('span', { 'class': 'text-subtlest', text: 'No one chosen' });
    body.appendChild(section('Settings', dl([
      ['Space', s.spaceName + ' (' + s.spaceKey + ')'],
      ['Status', lozenge(s.status)],
      ['Permissions', perms],
      ['Includes', includesText(s)],
      ['Created', formatDate(s.createdAt) + (d.createdBy ? ' by ' + d.createdBy.name : '')]
    ])));
    if (!d.canAdmin) {
      body.appendChild(el('div', { 'class': 'section-message' }, el('div', { 'class': 'section-message__body' },
        el('p', { text: 'Token history, recipients and the link to Data Center are shown to this space’s admins only.' }))));
      return;
    }
    if (d.link) {
      body.appendChild(section('Linked Data Center instance', dl([
        ['Instance', d.link.instanceName],
        d.link.instanceBaseUrl ? ['Address', d.link.instanceBaseUrl] : null,
        ['Imported as', d.link.name],
        ['Linked', formatDate(d.link.linkedAt)],
        d.link.lastUsedAt ? ['Last contact', formatDate(d.link.lastUsedAt)] : null
      ])));
    } else {
      body.appendChild(section('Linked Data Center instance', el('p', { 'class': 'text-subtle', text: 'Not linked. The sync is linked when a Data Center admin imports one of its tokens.' })));
    }
    var toks = d.tokens || [];
    body.appendChild(section('Tokens', toks.length ? table('Tokens of this sync', ['Issued', 'By', 'Given as', 'Expires', 'State'], toks.map(function (t) {
      return [formatDate(t.issuedAt), t.issuedBy.name,
        t.channel === 'email' ? 'Emailed to ' + t.recipient : 'Downloaded',
        formatDate(t.expiresAt), tokenState(t)];
    })) : el('p', { 'class': 'text-subtle', text: 'No token has been sent or downloaded yet.' })));
    var links = (d.links || []).filter(function (l) { return l.status !== 'active'; });
    if (links.length) {
      body.appendChild(section('Earlier links', table('Earlier links', ['Instance', 'Linked', 'Unlinked'], links.map(function (l) {
        return [l.instanceName + (l.instanceBaseUrl ? ' (' + l.instanceBaseUrl + ')' : ''), formatDate(l.linkedAt), formatDate(l.unlinkedAt)];
      }))));
    }
    var audit = d.audit || [];
    body.appendChild(section('History', audit.length ? table('History of this sync', ['When', 'Who', 'What'], audit.map(function (e) {
      return [formatDate(e.at), e.actor.name, e.summary];
    })) : el('p', { 'class': 'text-subtle', text: 'Nothing recorded yet.' })));
  }

  function openDetails(s, opener) {
    var seq = ++details.seq;
    $('dlg-details-title').textContent = 'Details of “' + s.name + '”';
    var body = $('details-body');
    body.replaceChildren(el('div', { role: 'status' }, progress('Loading the details…')));
    openDialog(details.dlg, opener, details.dlg.querySelector('[data-close]'));
    api('GET', '/api/ui/syncs/' + enc(s.id)).then(function (d) {
      if (seq === details.seq) {
        renderDetails(d);
      }
    }, function (err) {
      if (seq !== details.seq) {
        return;
      }
      body.replaceChildren(el('div', { 'class': 'section-message section-message--error', role: 'alert' },
        el('div', { 'class': 'section-message__body' }, el('p', { 'class': 'section-message__title', text: errorTitle(err) }), el('p', { text: errorText(err) }))));
    });
  }

  /* ---------- start ---------- */

  renderChosen();
  loadSpaces();
})();
