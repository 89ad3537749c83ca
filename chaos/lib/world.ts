import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import Dockerode from 'dockerode';
import pg from 'pg';
import { S3Store } from '../../src/storage/s3.js';
import { startS3rver, type S3rverHandle } from '../../test/helpers/s3.js';
import { check, type Expectations, type Row } from './checker.js';
import { DockerEventRecorder } from './dockerEvents.js';
import { ApiClient, CHAOS_IMAGE, CHAOS_SECRET, CHAOS_SECRETS_KEY, startKiln, type KilnEnv, type KilnProcess } from './kiln.js';
import { startPgCluster, type PgCluster } from './pgCluster.js';

/** What every scenario shares: one Postgres cluster, one s3rver, one engine event recorder. */
export interface World {
  runDir: string;
  pg: PgCluster;
  s3: S3rverHandle;
  store: S3Store;
  recorder: DockerEventRecorder;
  close(): Promise<void>;
}

export async function startWorld(runDir: string): Promise<World> {
  mkdirSync(runDir, { recursive: true });
  const pgc = await startPgCluster({ settings: { max_connections: '300' } });
  const s3 = await startS3rver('kiln-chaos');
  const store = new S3Store({ bucket: s3.bucket, endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: s3.credentials, connectionTimeoutMs: 1000 });
  const recorder = new DockerEventRecorder();
  await recorder.start();
  return {
    runDir,
    pg: pgc,
    s3,
    store,
    recorder,
    async close() {
      await recorder.stop();
      store.close();
      await s3.stop();
      await pgc.destroy();
    },
  };
}

/** One scenario's Kiln: its own database, one `kiln serve`, workers started on demand. */
export class ScenarioRun {
  readonly workers = new Map<string, KilnProcess>();
  readonly logDir: string;
  readonly startedAt = Date.now();
  pool!: pg.Pool;
  api!: KilnProcess;
  client!: ApiClient;
  databaseUrl!: string;
  private kilnEnv!: KilnEnv;
  private installation: string | null = null;

  constructor(
    readonly world: World,
    readonly name: string,
    private readonly extraEnv: Record<string, string> = {},
  ) {
    this.logDir = path.join(world.runDir, name);
  }

  /** Creates the database and starts the API. */
  async start(): Promise<void> {
    const db = `chaos_${this.name.replace(/\W/g, '_')}_${Date.now().toString(36)}`;
    this.databaseUrl = await this.world.pg.createDatabase(db);
    this.pool = new pg.Pool({ connectionString: this.databaseUrl, max: 4, application_name: 'kiln chaos checker' });
    this.pool.on('error', () => {});
    this.pool.on('connect', (c) => c.on('error', () => {}));
    this.kilnEnv = {
      logDir: this.logDir,
      env: {
        DATABASE_URL: this.databaseUrl,
        KILN_JWT_SECRET: CHAOS_SECRET,
        KILN_SECRETS_KEY: CHAOS_SECRETS_KEY,
        KILN_DATA_DIR: path.join(this.logDir, 'data'),
        KILN_DEFAULT_IMAGE: CHAOS_IMAGE,
        S3_BUCKET: this.world.s3.bucket,
        S3_ENDPOINT: this.world.s3.endpoint,
        S3_REGION: 'us-east-1',
        S3_FORCE_PATH_STYLE: 'true',
        AWS_ACCESS_KEY_ID: this.world.s3.credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: this.world.s3.credentials.secretAccessKey,
        KILN_POLL_INTERVAL_MS: '500',
        KILN_RETRY_BASE_MS: '500',
        KILN_STOP_GRACE_MS: '1000',
        KILN_REAP_INTERVAL_MS: '5000',
        KILN_WORKER_CONCURRENCY: '2',
        ...this.extraEnv,
      },
    };
    this.api = await startKiln('serve', 'api', this.kilnEnv);
    this.client = await ApiClient.forUser(this.api.url!, 'chaos');
  }

  async startWorker(name: string, extra: Record<string, string> = {}): Promise<KilnProcess> {
    const w = await startKiln('worker', name, this.kilnEnv, extra);
    this.workers.set(name, w);
    return w;
  }

  /** The installation id that labels this run's containers (created by the first worker). */
  async installationId(): Promise<string> {
    if (this.installation) return this.installation;
    for (;;) {
      const { rows } = await this.pool.query<{ id: string }>(`select id from kiln_installation`).catch(() => ({ rows: [] as Array<{ id: string }> }));
      if (rows[0]) return (this.installation = rows[0].id);
      await delay(200);
    }
  }

  /** Polls `probe` until it yields a value, or throws after `timeoutMs`. */
  async waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined | null | false>, everyMs = 100): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe().catch(() => undefined);
      if (v !== undefined && v !== null && v !== false) return v;
      if (Date.now() > deadline) throw new Error(`${this.name}: timed out after ${timeoutMs} ms waiting for ${what}`);
      await delay(everyMs);
    }
  }

  async check(expect: Expectations, settleMs?: number): Promise<Row> {
    return check({
      scenario: this.name,
      pool: this.pool,
      store: this.world.store,
      recorder: this.world.recorder,
      installationId: await this.installationId(),
      expect,
      startedAt: this.startedAt,
      settleMs,
    });
  }

  /** Stops every process and removes whatever containers of this installation remain. */
  async close(): Promise<void> {
    await Promise.all([...this.workers.values(), this.api].filter(Boolean).map((p) => p.stop()));
    if (this.installation) {
      const docker = new Dockerode();
      const left = await docker.listContainers({ all: true, filters: { label: [`kiln.installation=${this.installation}`] } }).catch(() => []);
      await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => {})));
    }
    await this.pool?.end().catch(() => {});
  }
}
