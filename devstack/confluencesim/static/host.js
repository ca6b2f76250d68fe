/*
 * Host side of the Confluence Cloud simulator's Connect bridge. It answers
 * the all.js stand-in inside the app iframe: getToken (minted server-side
 * for the signed-in simulator user by a same-origin fetch), resize and
 * sizeToParent. Messages are accepted only from the app iframe's window and
 * only with the app's origin; replies go only to the app's origin.
 */
(function () {
  'use strict';

  // The user switcher submits itself when a user is picked.
  var switcher = document.getElementById('user-switcher');
  if (switcher) {
    var select = switcher.querySelector('select');
    var button = switcher.querySelector('button');
    if (select && button) {
      button.hidden = true;
      select.addEventListener('change', function () {
        switcher.submit();
      });
    }
  }

  var frame = document.getElementById('ac-frame');
  if (!frame) {
    return;
  }
  var appOrigin = frame.getAttribute('data-app-origin');
  var tokenURL = frame.getAttribute('data-token-url');
  var appKey = frame.getAttribute('data-app-key');
  var sizedToParent = false;

  function reply(msg) {
    msg.confluencesim = 1;
    frame.contentWindow.postMessage(msg, appOrigin);
  }

  function mintToken(id) {
    fetch(tokenURL, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ appKey: appKey })
    }).then(function (resp) {
      return resp.json().then(function (body) {
        if (!resp.ok || typeof body.token !== 'string') {
          throw new Error(body.message || 'HTTP ' + resp.status);
        }
        return body.token;
      });
    }).then(function (token) {
      reply({ type: 'getTokenResult', id: id, token: token });
    }, function (err) {
      reply({ type: 'getTokenResult', id: id, error: String(err && err.message) });
    });
  }

  function cssSize(v) {
    return typeof v === 'string' && /^\d+(\.\d+)?(px|%)$/.test(v) ? v : null;
  }

  function fillParent() {
    var top = frame.getBoundingClientRect().top + window.scrollY;
    frame.style.height = Math.max(150, window.innerHeight - top) + 'px';
  }

  window.addEventListener('message', function (ev) {
    if (ev.source !== frame.contentWindow || ev.origin !== appOrigin) {
      return;
    }
    var d = ev.data;
    if (!d || d.confluencesim !== 1) {
      return;
    }
    switch (d.type) {
      case 'getToken':
        if (typeof d.id === 'number') {
          mintToken(d.id);
        }
        break;
      case 'resize':
        if (!sizedToParent) {
          var w = cssSize(d.width);
          var h = cssSize(d.height);
          if (w) {
            frame.style.width = w;
          }
          if (h) {
            frame.style.height = h;
          }
        }
        break;
      case 'sizeToParent':
        sizedToParent = true;
        fillParent();
        break;
    }
  });

  window.addEventListener('resize', function () {
    if (sizedToParent) {
      fillParent();
    }
  });
})();
