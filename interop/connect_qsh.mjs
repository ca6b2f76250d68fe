// connect_qsh.mjs: the canonical request and qsh of each request, computed
// by npm atlassian-jwt 2.0.3, for cloud-app's internal/connect tests.
//
// stdin:  [{"method": "GET", "url": "https://host/app/path?x=1", "baseUrl": "https://host/app"}, ...]
// stdout: [{"canonical": "GET&/path&x=1", "qsh": "<hex>"} | {"error": "..."}, ...]
import * as ajwt from 'atlassian-jwt';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const input = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const out = input.map(({ method, url, baseUrl }) => {
  try {
    const req = ajwt.fromMethodAndUrl(method, url);
    return {
      canonical: ajwt.createCanonicalRequest(req, false, baseUrl),
      qsh: ajwt.createQueryStringHash(req, false, baseUrl),
    };
  } catch (e) {
    return { error: String(e && e.message) };
  }
});
process.stdout.write(JSON.stringify(out));
