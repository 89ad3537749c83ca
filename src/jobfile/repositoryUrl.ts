import path from 'node:path';

/**
 * What the server allows `repository.url` to reach (docs/design.md#sandboxed-checkout): the
 * operator's KILN_GIT_PROTOCOLS and KILN_GIT_LOCAL_ROOT, as the API checks them at submit.
 */
export interface RepositoryPolicy {
  /** Network transports, as git's GIT_ALLOW_PROTOCOL names them (`https`, `ssh`, `git`...). */
  protocols: readonly string[];
  /** The host directory whose repositories may be cloned by path or file:// URL; null = none. */
  localRoot: string | null;
}

/** How git reads a repository address: a transport, and for a local one its absolute path. */
export type RepositoryAddress = { transport: string; localPath: null } | { transport: 'file'; localPath: string | null };

/**
 * The transport git would use for `url`, by git's own rules: `scheme://` names it (`git+ssh` and
 * `ssh+git` are ssh), `[user@]host:path` with no slash before the colon is ssh, anything else is
 * a path on the machine git runs on. Pure.
 */
export function repositoryAddress(url: string): RepositoryAddress {
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(url);
  if (scheme) {
    const name = scheme[1]!.toLowerCase();
    if (name === 'file') {
      const rest = url.slice(scheme[0].length);
      // file:///srv/x and file://localhost/srv/x; any other host is not local.
      const local = rest.startsWith('/') ? rest : rest.startsWith('localhost/') ? rest.slice('localhost'.length) : null;
      return { transport: 'file', localPath: local === null ? null : decodeURIComponentSafe(local) };
    }
    return { transport: name === 'git+ssh' || name === 'ssh+git' ? 'ssh' : name, localPath: null };
  }
  const colon = url.indexOf(':');
  const slash = url.indexOf('/');
  if (colon > 0 && (slash === -1 || colon < slash)) return { transport: 'ssh', localPath: null };
  return { transport: 'file', localPath: url.startsWith('/') ? url : null };
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * Null when the server allows `url`, otherwise why not, naming the setting. A local path must be
 * absolute and inside the allowed directory once `.` and `..` are resolved (the checkout only
 * sees that directory, so this check is the one a user can act on, not the only barrier).
 */
export function repositoryUrlProblem(url: string, policy: RepositoryPolicy): string | null {
  const address = repositoryAddress(url);
  if (address.transport === 'file') {
    if (policy.localRoot === null) {
      return 'local paths and file:// URLs are not allowed on this server (KILN_GIT_LOCAL_ROOT is not set); use an https URL';
    }
    if (address.localPath === null) return `"${url}" is not an absolute path on the server; local repositories are given as /path or file:///path`;
    const resolved = path.posix.normalize(address.localPath);
    const root = policy.localRoot.replace(/\/+$/, '');
    if (resolved !== root && !resolved.startsWith(`${root}/`)) {
      return `"${url}" is outside the directory this server allows local repositories in (KILN_GIT_LOCAL_ROOT)`;
    }
    return null;
  }
  if (!policy.protocols.includes(address.transport)) {
    return `the ${address.transport} transport is not allowed on this server (KILN_GIT_PROTOCOLS allows ${policy.protocols.join(', ') || 'none'})`;
  }
  return null;
}
