// ajwt_jwt.mjs: JWT operations done by npm atlassian-jwt 2.0.3, for the
// Confluence simulator's tests.
//
// stdin: a list of operations, each one of
//   {"op": "decodeSymmetric",  "token", "secret"}           -> {"payload", "alg"}
//   {"op": "decodeAsymmetric", "token", "publicKeyPem"}     -> {"payload", "alg", "kid"}
//   {"op": "encodeSymmetric",  "payload", "secret"}         -> {"token"}
//   {"op": "encodeAsymmetric", "payload", "privateKeyPem", "kid"} -> {"token"}
//   {"op": "qsh", "method", "url", "baseUrl"}               -> {"qsh", "canonical"}
// stdout: the results in order; a failed operation gives {"error": "..."}.
import * as ajwt from 'atlassian-jwt';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const ops = JSON.parse(Buffer.concat(chunks).toString('utf8'));

function run(o) {
  switch (o.op) {
    case 'decodeSymmetric':
      return {
        payload: ajwt.decodeSymmetric(o.token, o.secret, ajwt.SymmetricAlgorithm.HS256),
        alg: ajwt.getAlgorithm(o.token),
      };
    case 'decodeAsymmetric':
      return {
        payload: ajwt.decodeAsymmetric(o.token, o.publicKeyPem, ajwt.AsymmetricAlgorithm.RS256),
        alg: ajwt.getAlgorithm(o.token),
        kid: ajwt.getKeyId(o.token),
      };
    case 'encodeSymmetric':
      return { token: ajwt.encodeSymmetric(o.payload, o.secret, ajwt.SymmetricAlgorithm.HS256) };
    case 'encodeAsymmetric':
      return {
        token: ajwt.encodeAsymmetric(o.payload, o.privateKeyPem, ajwt.AsymmetricAlgorithm.RS256, { kid: o.kid }),
      };
    case 'qsh': {
      const req = ajwt.fromMethodAndUrl(o.method, o.url);
      return {
        canonical: ajwt.createCanonicalRequest(req, false, o.baseUrl),
        qsh: ajwt.createQueryStringHash(req, false, o.baseUrl),
      };
    }
    default:
      throw new Error('unknown op ' + JSON.stringify(o.op));
  }
}

const out = ops.map((o) => {
  try {
    return run(o);
  } catch (e) {
    return { error: String(e && e.message) };
  }
});
process.stdout.write(JSON.stringify(out));
