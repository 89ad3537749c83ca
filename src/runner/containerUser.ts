import type { ContainerBackend, ContainerHandle } from './types.js';

/** The numeric user and group a container's steps run as. */
export interface NumericOwner {
  uid: number;
  gid: number;
}

/** The user a container runs as cannot be resolved from its image (a job's error, not Kiln's). */
export class ContainerUserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ContainerUserError';
  }
}

/**
 * The numeric uid and gid the container's steps run as: the configured user, resolved through
 * the container's own /etc/passwd and /etc/group when it is a name. Root when the image names none.
 */
export async function ownerOf(backend: ContainerBackend, handle: ContainerHandle): Promise<NumericOwner> {
  const [user = '', group] = (handle.user ?? '').split(':');
  if (user === '' || user === 'root' || user === '0') return { uid: 0, gid: group && /^\d+$/.test(group) ? Number(group) : 0 };
  let uid = /^\d+$/.test(user) ? Number(user) : undefined;
  let gid = group !== undefined && /^\d+$/.test(group) ? Number(group) : undefined;
  if (uid === undefined || gid === undefined) {
    const passwd = await readContainerFile(backend, handle, '/etc/passwd');
    const entry = passwd
      ?.split('\n')
      .map((l) => l.split(':'))
      .find((f) => (uid === undefined ? f[0] === user : f[2] === String(uid)));
    if (uid === undefined) {
      if (!entry) throw new ContainerUserError(`the image's user "${user}" is not in its /etc/passwd`);
      uid = Number(entry[2]);
    }
    if (gid === undefined && group !== undefined) {
      const groups = await readContainerFile(backend, handle, '/etc/group');
      const g = groups?.split('\n').map((l) => l.split(':')).find((f) => f[0] === group);
      if (!g) throw new ContainerUserError(`the image's group "${group}" is not in its /etc/group`);
      gid = Number(g[2]);
    }
    gid ??= entry ? Number(entry[3]) : uid;
  }
  return { uid, gid: gid ?? uid };
}

/** A small file of the container, through the engine's archive API (no tool needed in the image). */
async function readContainerFile(backend: ContainerBackend, handle: ContainerHandle, file: string): Promise<string | null> {
  const tar = await backend.copyOut(handle, file);
  if (tar === null) return null;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of tar) {
    chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
    if (size > 4 * 1024 * 1024) throw new ContainerUserError(`${file} of the image is larger than 4 MiB`);
  }
  const archive = Buffer.concat(chunks);
  // One ustar entry: a 512-byte header (size in octal at offset 124), then the content.
  const length = parseInt(archive.subarray(124, 136).toString('ascii').replace(/\0.*$/, '').trim(), 8);
  return Number.isFinite(length) ? archive.subarray(512, 512 + length).toString('utf8') : null;
}
