// jose_decrypt.mjs: decrypts a space token with npm jose, the independent
// implementation the Go token package is checked against.
//
// stdin:  {"token", "key" (base64url), "mode": "compact"|"jwt",
//          "keyManagementAlgorithms": [...], "contentEncryptionAlgorithms": [...],
//          and for "jwt": "issuer", "audience", "typ", "currentDate" (seconds)}
// stdout: {"ok": true, "protectedHeader": {...}, "payload": {...}}
//      or {"ok": false, "code": "<jose error code>", "message": "..."}
// A refusal is an answer, not a failure: the script exits 0 either way.
import { base64url, compactDecrypt, jwtDecrypt } from 'jose';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const input = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const key = base64url.decode(input.key);
const algorithms = {
  keyManagementAlgorithms: input.keyManagementAlgorithms,
  contentEncryptionAlgorithms: input.contentEncryptionAlgorithms,
};

let out;
try {
  if (input.mode === 'jwt') {
    const { payload, protectedHeader } = await jwtDecrypt(input.token, key, {
      ...algorithms,
      issuer: input.issuer,
      audience: input.audience,
      typ: input.typ,
      currentDate: new Date(input.currentDate * 1000),
      clockTolerance: 120,
    });
    out = { ok: true, protectedHeader, payload };
  } else {
    const { plaintext, protectedHeader } = await compactDecrypt(input.token, key, algorithms);
    out = { ok: true, protectedHeader, payload: JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(plaintext)) };
  }
} catch (err) {
  out = { ok: false, code: err.code ?? err.name, message: err.message };
}
process.stdout.write(JSON.stringify(out));
