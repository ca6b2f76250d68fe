// connect_bench.mjs: how long npm atlassian-jwt 2.0.3 takes to verify one
// incoming Connect request on this machine — decodeSymmetric (HS256
// signature check) plus createQueryStringHash of the request — for
// comparison with cloud-app's BenchmarkVerify* (recorded in
// BENCHMARKS.md at the repository root). The requests, secret and
// claims are the same as the Go benchmarks'.
//
//   node interop/connect_bench.mjs [iterations]
//
// stdout: {"node", "iterations", "page": {"nsPerOp"}, "context": {"nsPerOp"}}
import * as ajwt from 'atlassian-jwt';

const n = Number(process.argv[2] || 200000);
const secret = 'sharedsecret-of-the-benchmark-tenant-0123456789abcdef';
const baseUrl = 'https://app.example.com';
const pageQuery = 'xdm_e=https%3A%2F%2Facme.atlassian.net&xdm_c=channel-space-sync&cp=%2Fwiki&lic=none&cv=1001.0.0-SNAPSHOT&tz=Europe%2FBerlin&loc=en-GB&user_id=&xdm_deprecated_addon_key_do_not_use=space-sync';
const pageURL = `${baseUrl}/pages/space-sync?${pageQuery}`;
const contextURL = `${baseUrl}/api/ui/spaces?query=eng&cursor=`;
const now = Math.floor(Date.now() / 1000);
const claims = { iss: 'bench-client-key', sub: '557058:f0a1b2c3-d4e5-4f60-8a7b-9c0d1e2f3a4b', iat: now, exp: now + 3600 };

const pageTok = ajwt.encodeSymmetric(
  { ...claims, qsh: ajwt.createQueryStringHash(ajwt.fromMethodAndUrl('GET', pageURL), false, baseUrl) }, secret);
const contextTok = ajwt.encodeSymmetric({ ...claims, qsh: 'context-qsh' }, secret);

function verify(token, url, wantContext) {
  const c = ajwt.decodeSymmetric(token, secret, ajwt.SymmetricAlgorithm.HS256);
  const qsh = ajwt.createQueryStringHash(ajwt.fromMethodAndUrl('GET', url), false, baseUrl);
  if (c.exp < now) throw new Error('expired');
  if (wantContext ? c.qsh !== 'context-qsh' : c.qsh !== qsh) throw new Error('qsh mismatch');
}

function measure(token, url, wantContext) {
  for (let i = 0; i < Math.min(n, 20000); i++) verify(token, url, wantContext); // warm up the JIT
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) verify(token, url, wantContext);
  return { nsPerOp: Number(process.hrtime.bigint() - start) / n };
}

const page = measure(pageTok, `${pageURL}&jwt=${pageTok}`, false);
const context = measure(contextTok, contextURL, true);
process.stdout.write(JSON.stringify({ node: process.version, iterations: n, page, context }) + '\n');
