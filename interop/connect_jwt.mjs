// connect_jwt.mjs: Connect JWT operations done by npm atlassian-jwt 2.0.3,
// for cloud-app's internal/connect tests.
//
// stdin: a list of operations, each one of
//   {"op": "encodeSymmetric",  "payload", "secret"}                 -> {"token"}
//   {"op": "decodeSymmetric",  "token", "secret"}                   -> {"payload", "alg"}
//   {"op": "encodeAsymmetric", "payload", "privateKeyPem", "kid"}   -> {"token"}
//   {"op": "decodeAsymmetric", "token", "publicKeyPem"}             -> {"payload", "alg", "kid"}
// stdout: the results in order; a failed operation gives {"error": "..."}.
import * as ajwt from 'atlassian-jwt';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const ops = JSON.parse(Buffer.concat(chunks).toString('utf8'));

function run(o) {
  switch (o.op) {
    case 'encodeSymmetric':
      return { token: ajwt.encodeSymmetric(o.payload, o.secret, ajwt.SymmetricAlgorithm.HS256) };
    case 'decodeSymmetric':
      return {
        payload: ajwt.decodeSymmetric(o.token, o.secret, ajwt.SymmetricAlgorithm.HS256),
        alg: ajwt.getAlgorithm(o.token),
      };
    case 'encodeAsymmetric':
      return {
        token: ajwt.encodeAsymmetric(o.payload, o.privateKeyPem, ajwt.AsymmetricAlgorithm.RS256, { kid: o.kid }),
      };
    case 'decodeAsymmetric':
      return {
        payload: ajwt.decodeAsymmetric(o.token, o.publicKeyPem, ajwt.AsymmetricAlgorithm.RS256),
        alg: ajwt.getAlgorithm(o.token),
        kid: ajwt.getKeyId(o.token),
      };
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
