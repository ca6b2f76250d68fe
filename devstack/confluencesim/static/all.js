/*
 * all.js stand-in, served by the Confluence Cloud simulator
 * (devstack/confluencesim). It is NOT Atlassian's all.js: it implements only
 * the calls Space Sync uses and throws on anything else, so an app that
 * starts relying on another AP call fails loudly in tests.
 *
 * Implemented: AP.context.getToken([callback]) -> Promise<string>,
 * AP.resize([width], [height]), AP.sizeToParent(), and the data-options
 * "resize:false" / "sizeToParent:true" of the script tag.
 *
 * It talks to the host page by postMessage only. The host origin comes from
 * the xdm_e parameter of this page's URL, as in real Connect; replies are
 * accepted only from window.parent with exactly that origin.
 */
(function () {
  'use strict';

  var PREFIX = 'all.js stand-in: ';
  var TOKEN_TIMEOUT_MS = 10000;

  var hostOrigin = null;
  try {
    var xdmE = new URLSearchParams(window.location.search).get('xdm_e');
    if (xdmE) {
      hostOrigin = new URL(xdmE).origin;
    }
  } catch (e) {
    hostOrigin = null;
  }

  var pending = new Map();
  var nextId = 1;
  var autoResize = true;

  function send(msg) {
    if (!hostOrigin || hostOrigin === 'null') {
      throw new Error(PREFIX + "this page's URL has no valid xdm_e parameter, so the host is unknown");
    }
    if (!window.parent || window.parent === window) {
      throw new Error(PREFIX + 'this page is not framed by a Connect host');
    }
    msg.confluencesim = 1;
    window.parent.postMessage(msg, hostOrigin);
  }

  window.addEventListener('message', function (ev) {
    if (ev.source !== window.parent || ev.origin !== hostOrigin) {
      return;
    }
    var d = ev.data;
    if (!d || d.confluencesim !== 1 || d.type !== 'getTokenResult') {
      return;
    }
    var p = pending.get(d.id);
    if (!p) {
      return;
    }
    pending.delete(d.id);
    clearTimeout(p.timer);
    if (typeof d.token === 'string' && d.token !== '') {
      p.resolve(d.token);
    } else {
      p.reject(new Error(PREFIX + 'getToken failed: ' + String(d.error || 'the host sent no token')));
    }
  });

  function getToken(callback) {
    if (callback !== undefined && typeof callback !== 'function') {
      throw new TypeError(PREFIX + 'AP.context.getToken takes an optional callback function');
    }
    var promise = new Promise(function (resolve, reject) {
      var id = nextId++;
      var timer = setTimeout(function () {
        pending.delete(id);
        reject(new Error(PREFIX + 'getToken timed out waiting for the host'));
      }, TOKEN_TIMEOUT_MS);
      pending.set(id, { resolve: resolve, reject: reject, timer: timer });
      try {
        send({ type: 'getToken', id: id });
      } catch (e) {
        pending.delete(id);
        clearTimeout(timer);
        reject(e);
      }
    });
    if (callback) {
      promise.then(function (token) {
        callback(token);
      }, function (err) {
        if (typeof console !== 'undefined') {
          console.error(err);
        }
      });
    }
    return promise;
  }

  function size(v, fallback) {
    if (v === undefined || v === null || v === '') {
      return fallback;
    }
    if (typeof v === 'number' && isFinite(v) && v >= 0) {
      return v + 'px';
    }
    if (typeof v === 'string' && /^\d+(\.\d+)?(px|%)?$/.test(v)) {
      return /\d$/.test(v) ? v + 'px' : v;
    }
    throw new TypeError(PREFIX + 'AP.resize takes pixels or a percentage, not ' + JSON.stringify(v));
  }

  function contentHeight() {
    var doc = window.document;
    if (!doc || !doc.documentElement) {
      return 0;
    }
    return Math.ceil(Math.max(doc.documentElement.scrollHeight, doc.body ? doc.body.scrollHeight : 0));
  }

  function resize(width, height) {
    send({ type: 'resize', width: size(width, '100%'), height: size(height, contentHeight() + 'px') });
  }

  function sizeToParent() {
    autoResize = false;
    send({ type: 'sizeToParent' });
  }

  function strict(name, target) {
    return new Proxy(Object.freeze(target), {
      get: function (t, prop) {
        if (typeof prop === 'symbol') {
          return undefined;
        }
        if (Object.prototype.hasOwnProperty.call(t, prop)) {
          return t[prop];
        }
        throw new Error(PREFIX + name + '.' + String(prop) + ' is not implemented');
      },
      set: function (t, prop) {
        throw new Error(PREFIX + name + '.' + String(prop) + ' cannot be set');
      }
    });
  }

  window.AP = strict('AP', {
    context: strict('AP.context', { getToken: getToken }),
    resize: resize,
    sizeToParent: sizeToParent
  });

  // data-options on the script tag, as real all.js reads them.
  var script = window.document && window.document.currentScript;
  var options = (script && script.getAttribute('data-options')) || '';
  options.split(';').forEach(function (kv) {
    var parts = kv.split(':');
    var key = (parts[0] || '').trim();
    var value = (parts[1] || '').trim();
    if (key === 'resize' && value === 'false') {
      autoResize = false;
    }
    if (key === 'sizeToParent' && value === 'true') {
      autoResize = false;
      try {
        sizeToParent();
      } catch (e) {
        if (typeof console !== 'undefined') {
          console.error(e);
        }
      }
    }
  });

  // Automatic resizing to the content's height, as real all.js does by
  // default for pages that do not size to their parent.
  if (autoResize && typeof ResizeObserver === 'function' && window.document && hostOrigin) {
    var last = -1;
    var observe = function () {
      if (!autoResize || !window.document.body) {
        return;
      }
      new ResizeObserver(function () {
        var h = contentHeight();
        if (autoResize && h !== last) {
          last = h;
          try {
            send({ type: 'resize', width: '100%', height: h + 'px' });
          } catch (e) {
            autoResize = false;
          }
        }
      }).observe(window.document.body);
    };
    if (window.document.readyState === 'loading') {
      window.document.addEventListener('DOMContentLoaded', observe);
    } else {
      observe();
    }
  }
})();
