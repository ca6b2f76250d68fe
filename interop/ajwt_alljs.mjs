// ajwt_alljs.mjs: runs the Confluence simulator's all.js stand-in in a Node
// vm with a fake window and checks its behaviour (strict AP proxy,
// getToken over postMessage with origin checks, resize, sizeToParent).
//
// stdin:  {"source": "<all.js text>", "hostOrigin": "http://localhost:8080",
//          "appOrigin": "http://127.0.0.1:8081"}
// stdout: {"checks": [{"name", "ok", "detail"}]}
import vm from 'node:vm';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const { source, hostOrigin, appOrigin } = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const checks = [];
function check(name, ok, detail) {
  checks.push({ name, ok: !!ok, detail: detail === undefined ? '' : String(detail) });
}
const tick = () => new Promise((r) => setImmediate(r));

// load returns a fake browser window running all.js, framed by a parent
// that records what it is sent.
function load(search) {
  const listeners = [];
  const sent = [];
  const parent = { postMessage: (data, targetOrigin) => sent.push({ data: JSON.parse(JSON.stringify(data)), targetOrigin }) };
  const win = {
    location: { search, origin: appOrigin },
    parent,
    addEventListener: (type, fn) => { if (type === 'message') listeners.push(fn); },
    URL, URLSearchParams, setTimeout, clearTimeout, console: { error() {} },
  };
  win.window = win;
  vm.createContext(win);
  vm.runInContext(source, win, { filename: 'all.js' });
  const deliver = (ev) => listeners.forEach((fn) => fn(ev));
  return { win, sent, deliver, parent };
}

function throwsWith(fn, text) {
  try {
    fn();
    return 'did not throw';
  } catch (e) {
    return String(e && e.message).includes(text) ? '' : 'threw ' + String(e && e.message);
  }
}

const search = '?lic=none&xdm_e=' + encodeURIComponent(hostOrigin) + '&xdm_c=channel-x&cp=%2Fwiki&jwt=a.b.c';
const { win, sent, deliver, parent } = load(search);
const AP = win.AP;

let msg = throwsWith(() => AP.events, 'all.js stand-in: AP.events is not implemented');
check('AP.events throws', msg === '', msg);
msg = throwsWith(() => AP.request({}), 'all.js stand-in: AP.request is not implemented');
check('AP.request throws', msg === '', msg);
msg = throwsWith(() => AP.context.getContext(() => {}), 'all.js stand-in: AP.context.getContext is not implemented');
check('AP.context.getContext throws', msg === '', msg);
msg = throwsWith(() => { AP.context = null; }, 'cannot be set');
check('AP is read-only', msg === '', msg);
check('implemented members are functions', typeof AP.context.getToken === 'function' && typeof AP.resize === 'function' && typeof AP.sizeToParent === 'function');

// getToken, callback and Promise forms.
let cbToken = null;
const p1 = AP.context.getToken((t) => { cbToken = t; });
const p2 = AP.context.getToken();
check('getToken posts to the parent with targetOrigin = xdm_e origin',
  sent.length === 2 && sent.every((s) => s.targetOrigin === hostOrigin && s.data.type === 'getToken' && typeof s.data.id === 'number'),
  JSON.stringify(sent));
const [id1, id2] = sent.map((s) => s.data.id);
let settled1 = false;
p1.then(() => { settled1 = true; }, () => { settled1 = true; });
deliver({ source: parent, origin: 'http://evil.example', data: { confluencesim: 1, type: 'getTokenResult', id: id1, token: 'forged' } });
deliver({ source: {}, origin: hostOrigin, data: { confluencesim: 1, type: 'getTokenResult', id: id1, token: 'forged' } });
deliver({ source: parent, origin: hostOrigin, data: { type: 'getTokenResult', id: id1, token: 'unmarked' } });
await tick();
check('replies from another origin, another window or without the marker are ignored', !settled1 && cbToken === null);
deliver({ source: parent, origin: hostOrigin, data: { confluencesim: 1, type: 'getTokenResult', id: id1, token: 'tok-1' } });
deliver({ source: parent, origin: hostOrigin, data: { confluencesim: 1, type: 'getTokenResult', id: id2, error: 'app disabled' } });
const r1 = await p1.then((t) => t, (e) => 'rejected: ' + e.message);
const r2 = await p2.then((t) => 'resolved: ' + t, (e) => e.message);
await tick();
check('getToken(callback) resolves and calls back with the token', r1 === 'tok-1' && cbToken === 'tok-1', r1 + ' / ' + cbToken);
check('getToken() rejects with the host error', r2.includes('getToken failed: app disabled'), r2);

// resize and sizeToParent.
sent.length = 0;
AP.resize(400, 300);
AP.resize('100%', '50%');
AP.resize('640px');
AP.sizeToParent();
const kinds = sent.map((s) => [s.data.type, s.data.width, s.data.height, s.targetOrigin === hostOrigin]);
check('AP.resize posts pixel or percent sizes',
  JSON.stringify(kinds.slice(0, 2)) === JSON.stringify([['resize', '400px', '300px', true], ['resize', '100%', '50%', true]]) &&
  kinds[2][0] === 'resize' && kinds[2][1] === '640px',
  JSON.stringify(kinds));
check('AP.sizeToParent posts sizeToParent', kinds[3] && kinds[3][0] === 'sizeToParent' && kinds[3][3], JSON.stringify(kinds[3]));
msg = throwsWith(() => AP.resize('20em'), 'AP.resize takes pixels or a percentage');
check('AP.resize refuses other units', msg === '', msg);

// Without xdm_e the host is unknown: nothing is posted and getToken rejects.
const bare = load('?lic=none');
const r3 = await bare.win.AP.context.getToken().then(() => 'resolved', (e) => e.message);
check('without xdm_e getToken rejects and posts nothing', r3.includes('no valid xdm_e') && bare.sent.length === 0, r3);

process.stdout.write(JSON.stringify({ checks }));
process.exit(0);
