// jose_encrypt.mjs: mints a token with npm jose, so the Go opener can be
// checked against tokens it did not make.
//
// stdin:  {"key" (base64url), "protectedHeader": {...}, "claims": {...}}
//         The header is used as given (alg, enc, kid, typ and the replicated
//         claims); the claims are encrypted as a JWT.
// stdout: {"token": "<compact JWE>"}
import { EncryptJWT, base64url } from 'jose';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const input = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const token = await new EncryptJWT(input.claims)
  .setProtectedHeader(input.protectedHeader)
  .encrypt(base64url.decode(input.key));
process.stdout.write(JSON.stringify({ token }));
