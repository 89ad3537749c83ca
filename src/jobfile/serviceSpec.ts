/** The shape of `services:` once compiled (docs/design.md#services); checked in services.ts. */

/** When a service is ready: a TCP port accepts a connection, or a command exits 0 in it. */
export type ReadyCheck = { tcp: number; timeoutMs: number } | { run: string; timeoutMs: number };

/** One container started beside the build (docs/design.md#services), normalized. */
export interface ServiceSpec {
  /** Its host name on the execution's network. */
  name: string;
  image: string;
  env: Record<string, string>;
  /** The image's own entrypoint and command run when null; otherwise these arguments replace its command. */
  command: string[] | null;
  /** null: ready once its container runs. */
  ready: ReadyCheck | null;
}
