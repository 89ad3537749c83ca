import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Bytes of an AES-256 key. */
export const SECRETS_KEY_BYTES = 32;
const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** A stored secret cannot be opened: the key changed (KILN_SECRETS_KEY) or the row was tampered with. */
export class SecretUnreadableError extends Error {
  constructor(name: string) {
    super(`secret "${name}" cannot be decrypted: it was stored with another key (KILN_SECRETS_KEY) or altered`);
    this.name = 'SecretUnreadableError';
  }
}

/**
 * Seals secret values for storage with AES-256-GCM. The owner and the name are authenticated
 * with the value, so a sealed value copied to another owner's or another name's row does not
 * open. Every seal uses a fresh random IV.
 */
export class SecretBox {
  private readonly key: Buffer;

  constructor(key: Uint8Array) {
    if (key.length !== SECRETS_KEY_BYTES) throw new Error(`a secrets key has ${SECRETS_KEY_BYTES} bytes, got ${key.length}`);
    this.key = Buffer.from(key);
  }

  seal(owner: string, name: string, value: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(associated(owner, name));
    const body = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    return `${VERSION}.${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')}`;
  }

  open(owner: string, name: string, sealed: string): string {
    const [version, data] = sealed.split('.');
    if (version !== VERSION || data === undefined) throw new SecretUnreadableError(name);
    const raw = Buffer.from(data, 'base64url');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, IV_BYTES));
      decipher.setAAD(associated(owner, name));
      decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretUnreadableError(name);
    }
  }
}

function associated(owner: string, name: string): Buffer {
  return Buffer.from(`${owner}\u0000${name}`, 'utf8');
}

/** Where the key lives when KILN_SECRETS_KEY is unset. */
export function secretsKeyPath(dataDir: string): string {
  return path.join(dataDir, 'secrets-key');
}

/**
 * Reads, or creates on first run (mode 0600), the data directory's secrets key. Processes on
 * other machines need the same key: set KILN_SECRETS_KEY there instead.
 */
export async function loadOrCreateSecretsKey(dataDir: string): Promise<{ key: Uint8Array; created: boolean }> {
  const file = secretsKeyPath(dataDir);
  const read = async () => Buffer.from((await readFile(file, 'utf8')).trim(), 'base64url');
  try {
    return { key: await read(), created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(SECRETS_KEY_BYTES);
  try {
    // 'wx' fails if another process created it meanwhile; then read theirs.
    await writeFile(file, key.toString('base64url') + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return { key: await read(), created: false };
  }
  return { key, created: true };
}
