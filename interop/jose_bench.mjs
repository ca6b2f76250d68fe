// jose_bench.mjs: times npm jose parsing and decrypting a space token, for
// the side-by-side numbers in BENCHMARKS.md.
//
// stdin:  {"token", "key" (base64url), "n" (iterations), "currentDate" (seconds)}
// stdout: {"n", "node", "jose", "compactDecryptNs", "jwtDecryptNs", "encryptNs"}
//         (mean nanoseconds per operation over n runs, after every operation
//         has been warmed up with n/5 runs)
import { CompactEncrypt, base64url, compactDecrypt, decodeProtectedHeader, jwtDecrypt } from 'jose';
import { readFile } from 'node:fs/promises';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const input = JSON.parse(Buffer.concat(chunks).toString('utf8'));
const key = base64url.decode(input.key);
const n = input.n;
const algorithms = { keyManagementAlgorithms: ['A256KW'], contentEncryptionAlgorithms: ['A256GCM'] };

async function warm(fn) {
  for (let i = 0; i < Math.max(1, n / 5); i++) await fn();
}

async function time(fn) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await fn();
  return Number(process.hrtime.bigint() - start) / n;
}

const { plaintext } = await compactDecrypt(input.token, key, algorithms);
const header = decodeProtectedHeader(input.token);
const pkg = JSON.parse(await readFile(new URL('./node_modules/jose/package.json', import.meta.url), 'utf8'));

const ops = {
  compactDecryptNs: async () => {
    const { plaintext } = await compactDecrypt(input.token, key, algorithms);
    JSON.parse(new TextDecoder().decode(plaintext));
  },
  jwtDecryptNs: () => jwtDecrypt(input.token, key, {
    ...algorithms,
    currentDate: new Date(input.currentDate * 1000),
  }),
  encryptNs: () => new CompactEncrypt(plaintext).setProtectedHeader(header).encrypt(key),
};
for (const fn of Object.values(ops)) await warm(fn);
const result = { n, node: process.version, jose: pkg.version };
for (const [name, fn] of Object.entries(ops)) result[name] = await time(fn);
process.stdout.write(JSON.stringify(result));
