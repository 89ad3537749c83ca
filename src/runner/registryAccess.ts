import type { RegistryCredentials } from './settings.js';

/**
 * The owner's secret that holds their credentials for `registry` (docs/design.md#local-privacy):
 * `REGISTRY_AUTH_` and the host in capitals, every character other than a letter or a digit as
 * `_`: `ghcr.io` -> `REGISTRY_AUTH_GHCR_IO`, `127.0.0.1:5000` -> `REGISTRY_AUTH_127_0_0_1_5000`.
 */
export function registrySecretName(registry: string): string {
  return `REGISTRY_AUTH_${registry.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}

/** Who may run which image that was pulled with credentials (the image_grants table). */
export interface ImageGrants {
  /** Whether the image was ever pulled with credentials, and whether `owner` may run it. */
  lookup(imageId: string, owner: string): Promise<{ private: boolean; granted: boolean }>;
  /** Records that `owner` pulled the image (with credentials, or proving access to a private one). */
  grant(imageId: string, owner: string): Promise<void>;
}

export interface PullCredentials {
  /** The owner's credentials for the image's registry, else the operator's where allowed; null: none. */
  credentials: RegistryCredentials | null;
  /**
   * Whose `credentials` are: an image pulled with the owner's own is private to the owners granted
   * it; one pulled with the operator's is one every user may pull anyway (KILN_REGISTRY_AUTH_IMAGES).
   */
  source: 'owner' | 'operator' | 'none';
}

/** Whose pull it is, and what they may pull with: the rule of docs/design.md#local-privacy. */
export interface PullAccess {
  owner: string;
  /** Read when a pull is needed: what to pull with, and whose that is. */
  credentials(): Promise<PullCredentials>;
  grants: ImageGrants;
}

/**
 * The registry host of an image reference, as Docker reads it: the first path component when it
 * has a dot or a port or is `localhost`, else Docker Hub (`docker.io`).
 */
export function registryOf(image: string): string {
  const slash = image.indexOf('/');
  if (slash < 0) return 'docker.io';
  const first = image.slice(0, slash);
  if (first.includes('.') || first.includes(':') || first === 'localhost') return first === 'index.docker.io' ? 'docker.io' : first;
  return 'docker.io';
}

/**
 * The repository an image reference names, in full: `alpine:3` -> `docker.io/library/alpine`,
 * `org/x` -> `docker.io/org/x`, `ghcr.io/org/x:tag@sha256:…` -> `ghcr.io/org/x`.
 */
export function repositoryOf(image: string): string {
  let ref = image.split('@')[0]!;
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon > slash) ref = ref.slice(0, colon);
  // Docker's own reading (registryOf): a first component with a dot, a port or `localhost` is a host.
  const first = ref.split('/')[0]!;
  const hasHost = ref.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  const registry = hasHost ? registryOf(ref) : 'docker.io';
  const path = hasHost ? ref.slice(first.length + 1) : ref;
  return `${registry}/${registry === 'docker.io' && !path.includes('/') ? `library/${path}` : path}`;
}

/**
 * Whether `image` is among `patterns` (KILN_REGISTRY_AUTH_IMAGES): a pattern is a repository
 * (`registry.example.com/team/app`), a prefix ending in `/*` (`registry.example.com/team/*`), or `*`.
 */
export function imageMatches(image: string, patterns: readonly string[]): boolean {
  const repo = repositoryOf(image);
  return patterns.some((p) => p === '*' || (p.endsWith('/*') ? repo.startsWith(p.slice(0, -1)) : repo === p));
}

/** A problem with a pattern of KILN_REGISTRY_AUTH_IMAGES, or null. */
export function imagePatternProblem(pattern: string): string | null {
  if (pattern === '*') return null;
  if (!/^[a-z0-9.-]+(:\d+)?(\/[a-z0-9._-]+)*(\/\*)?$/.test(pattern) || !pattern.includes('/')) {
    return `"${pattern}" is not a repository (registry.example.com/team/app), a prefix (registry.example.com/team/*) or *`;
  }
  return null;
}

/** A stored registry secret that is neither `username:password` nor a JSON object of credentials. */
export class RegistrySecretError extends Error {
  constructor(readonly secret: string) {
    super(`the secret ${secret} must be "username:password" or JSON such as {"username": "u", "password": "p"} (or {"identitytoken": "t"})`);
    this.name = 'RegistrySecretError';
  }
}

/** The credentials in an owner's registry secret: `username:password`, or JSON. */
export function parseRegistrySecret(secret: string, value: string): RegistryCredentials {
  const text = value.trim();
  if (text.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new RegistrySecretError(secret);
    }
    const c = parsed as Record<string, unknown>;
    const keys = Object.keys(c);
    if (keys.length === 0 || keys.some((k) => !['username', 'password', 'identitytoken'].includes(k) || typeof c[k] !== 'string')) {
      throw new RegistrySecretError(secret);
    }
    return c as RegistryCredentials;
  }
  const colon = text.indexOf(':');
  if (colon <= 0 || colon === text.length - 1) throw new RegistrySecretError(secret);
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/**
 * The operator's credentials (KILN_REGISTRY_AUTH) for `image`, only where the operator allowed
 * every user to pull with them (KILN_REGISTRY_AUTH_IMAGES); null otherwise.
 */
export function operatorCredentials(
  image: string,
  auth: Readonly<Record<string, RegistryCredentials>>,
  allowed: readonly string[],
): RegistryCredentials | null {
  if (!imageMatches(image, allowed)) return null;
  const registry = registryOf(image);
  return auth[registry] ?? (registry === 'docker.io' ? (auth['index.docker.io'] ?? auth['https://index.docker.io/v1/']) : undefined) ?? null;
}
