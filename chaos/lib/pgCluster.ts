import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A Postgres cluster of its own (initdb + pg_ctl in a temporary directory), so that tests and
 * the chaos suite can stop, crash and restart it without touching the machine's Postgres.
 * Listens on 127.0.0.1 only, trust auth, user `postgres`.
 */
export interface PgCluster {
  readonly port: number;
  readonly dataDir: string;
  /** postgres://postgres@127.0.0.1:<port>/<database> */
  url(database?: string): string;
  createDatabase(name: string): Promise<string>;
  /** `pg_ctl stop`; mode `immediate` is a crash (no shutdown checkpoint; WAL replay at the next start). */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  start(): Promise<void>;
  /** `pg_ctl restart -m <mode>` */
  restart(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Stops the server and removes its directory. */
  destroy(): Promise<void>;
}

/** The newest installed server binaries (Debian: /usr/lib/postgresql/<major>/bin), or PG_BIN. */
async function binDir(): Promise<string> {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  const majors = (await readdir(root).catch(() => [] as string[])).filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(b) - Number(a));
  if (majors.length === 0) throw new Error(`no Postgres server binaries under ${root}; set PG_BIN to the directory holding initdb and pg_ctl`);
  return path.join(root, majors[0]!, 'bin');
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** initdb refuses to run as root: as root, the cluster belongs to the system user `postgres`. */
async function ownerIds(): Promise<{ uid: number; gid: number } | null> {
  if (process.getuid?.() !== 0) return null;
  const { stdout } = await run('id', ['-u', 'postgres']);
  const { stdout: g } = await run('id', ['-g', 'postgres']);
  return { uid: Number(stdout.trim()), gid: Number(g.trim()) };
}

export async function startPgCluster(opts: { settings?: Record<string, string> } = {}): Promise<PgCluster> {
  const bin = await binDir();
  const owner = await ownerIds();
  // /tmp itself is world-traversable; the cluster's own directory belongs to its user.
  const base = await mkdtemp(path.join(os.tmpdir(), 'kiln-pg-'));
  await chmod(base, 0o755);
  const dataDir = path.join(base, 'data');
  const socketDir = path.join(base, 'socket');
  await mkdir(dataDir, { mode: 0o700 });
  await mkdir(socketDir, { mode: 0o755 });
  if (owner) {
    await chown(dataDir, owner.uid, owner.gid);
    await chown(socketDir, owner.uid, owner.gid);
  }
  const as = (cmd: string, args: string[]) =>
    owner ? run('runuser', ['-u', 'postgres', '--', path.join(bin, cmd), ...args]) : run(path.join(bin, cmd), args);

  await as('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const port = await freePort();
  const settings: Record<string, string> = {
    listen_addresses: "'127.0.0.1'",
    port: String(port),
    unix_socket_directories: `'${socketDir}'`,
    max_connections: '200',
    // The chaos suite crashes the server, never the machine: the OS keeps what Postgres wrote, so
    // WAL replay after `-m immediate` still sees every acknowledged commit without fsync.
    fsync: 'off',
    full_page_writes: 'off',
    logging_collector: 'off',
    ...opts.settings,
  };
  const conf = Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n';
  const confPath = path.join(dataDir, 'postgresql.auto.conf');
  await writeFile(confPath, conf);
  if (owner) await chown(confPath, owner.uid, owner.gid);
  const logFile = path.join(base, 'postgres.log');
  await writeFile(logFile, '');
  if (owner) await chown(logFile, owner.uid, owner.gid);

  const ctl = (args: string[]) => as('pg_ctl', ['-D', dataDir, '-l', logFile, '-w', '-t', '60', ...args]);
  await ctl(['start']);
  let running = true;

  const cluster: PgCluster = {
    port,
    dataDir,
    url: (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`,
    async createDatabase(name) {
      await as('createdb', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', name]);
      return cluster.url(name);
    },
    async stop(mode = 'fast') {
      await ctl(['stop', '-m', mode]);
      running = false;
    },
    async start() {
      await ctl(['start']);
      running = true;
    },
    async restart(mode = 'fast') {
      await ctl(['restart', '-m', mode]);
      running = true;
    },
    async destroy() {
      if (running) await ctl(['stop', '-m', 'immediate']).catch(() => {});
      running = false;
      await rm(base, { recursive: true, force: true });
    },
  };
  return cluster;
}
