import { chmod, mkdir, stat } from 'node:fs/promises';

/** Owner only: what Kiln keeps on disk (database, secrets, logs, artifacts) is no other user's. */
export const PRIVATE_DIR_MODE = 0o700;
/** Owner only, plus entry (not listing) for others: see {@link makePrivateDir}'s `traversable`. */
export const TRAVERSABLE_DIR_MODE = 0o711;
/** Mode of every file Kiln writes under its data directory. */
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Creates `dir` (and missing parents) readable by its owner only, and sets the group and other
 * permissions of an existing one the same way: a data directory made by an older Kiln (0755)
 * becomes private on the next start. Returns the mode it had when it was changed.
 *
 * `traversable` leaves others the right to enter (not to list) the directory: the embedded
 * Postgres, started as root, runs as the system user `postgres`, which must reach its own data
 * directory below. Every file Kiln writes there is 0600 anyway.
 */
export async function makePrivateDir(dir: string, opts: { traversable?: boolean } = {}): Promise<{ changedFrom: number | null }> {
  const mode = opts.traversable ? TRAVERSABLE_DIR_MODE : PRIVATE_DIR_MODE;
  await mkdir(dir, { recursive: true, mode });
  const current = (await stat(dir)).mode & 0o777;
  // The owner's own bits are the owner's business; group and other get exactly `mode`'s.
  const wanted = (current & 0o700) | (mode & 0o077);
  if (wanted === current) return { changedFrom: null };
  await chmod(dir, wanted);
  return { changedFrom: current };
}
