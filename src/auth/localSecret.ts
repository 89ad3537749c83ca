import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Where `kiln start` keeps the local-mode HS256 secret when KILN_JWT_SECRET is unset. */
export function localSecretPath(dataDir: string): string {
  return path.join(dataDir, 'jwt-secret');
}

/** Reads the data directory's local secret, or null when none was created yet. */
export async function readLocalSecret(dataDir: string): Promise<Uint8Array | null> {
  try {
    return new TextEncoder().encode((await readFile(localSecretPath(dataDir), 'utf8')).trim());
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Reads, or creates on first run (mode 0600), the data directory's local secret. */
export async function loadOrCreateLocalSecret(dataDir: string): Promise<{ secret: Uint8Array; created: boolean }> {
  const existing = await readLocalSecret(dataDir);
  if (existing !== null) return { secret: existing, created: false };
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const value = randomBytes(32).toString('base64url');
  // 'wx' fails if another process created it meanwhile; then read theirs.
  try {
    await writeFile(localSecretPath(dataDir), value + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return { secret: (await readLocalSecret(dataDir))!, created: false };
  }
  return { secret: new TextEncoder().encode(value), created: true };
}
