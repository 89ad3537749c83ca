import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archivedNdjson, archivedText } from './helpers/archive.js';
import { MASK } from '../src/logs/mask.js';
import { FilesystemStore } from '../src/storage/filesystem.js';
import { requireDocker } from './helpers/docker.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { getExecution, jobYaml, logsOf, runJob, type LogLineView } from './helpers/runner.js';

const TOKEN = 'tok-4f9a2c71e8b3d605';
const LONG_TOKEN = `${TOKEN}-and-more-secret`;
const PASSWORD = 'p@ss w/rd&x';

/** Every way the raw values could have leaked into a log, and what must not appear. */
const FORBIDDEN = [
  TOKEN,
  LONG_TOKEN,
  '-and-more-secret',
  PASSWORD,
  encodeURIComponent(PASSWORD),
  Buffer.from(TOKEN).toString('base64'),
  Buffer.from(TOKEN).toString('base64').replace(/=+$/, '').slice(0, -1),
];

const SET_SECRET = `mutation($n: String!, $v: String!) { setSecret(name: $n, value: $v) { name createdAt updatedAt } }`;

describe('secrets', () => {
  let k: TestKiln;
  let dir: string;
  let store: FilesystemStore;
  let token: string;

  beforeAll(async () => {
    await requireDocker();
    dir = await mkdtemp(path.join(tmpdir(), 'kiln-secrets-store-'));
    store = new FilesystemStore(dir);
    k = await startTestKiln({ store });
    token = await k.token('alice');
  });

  afterAll(async () => {
    await k?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe('through the API', () => {
    it('stores a secret and lists it by name, never with its value', async () => {
      const set = await k.gql(SET_SECRET, { n: 'LISTED_ONE', v: 'value-never-shown' }, token);
      expect(set.errors).toBeUndefined();
      expect(set.data!.setSecret).toMatchObject({ name: 'LISTED_ONE' });
      const list = await k.gql(`{ secrets { name createdAt updatedAt } }`, {}, token);
      expect(list.data!.secrets.map((s: { name: string }) => s.name)).toContain('LISTED_ONE');
      // There is no field to read a value back.
      const probe = await k.gql(`{ secrets { name value } }`, {}, token);
      expect(probe.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
      expect(JSON.stringify(list)).not.toContain('value-never-shown');
    });

    it('keeps each owner’s secrets apart', async () => {
      const bob = await k.token('bob');
      await k.gql(SET_SECRET, { n: 'BOBS_ONLY', v: 'bob-value' }, bob);
      const list = await k.gql(`{ secrets { name } }`, {}, token);
      expect(list.data!.secrets.map((s: { name: string }) => s.name)).not.toContain('BOBS_ONLY');
      const deleted = await k.gql(`mutation { deleteSecret(name: "BOBS_ONLY") }`, {}, token);
      expect(deleted.data!.deleteSecret).toBe(false);
    });

    it('replaces a value and deletes a secret', async () => {
      const first = await k.gql(SET_SECRET, { n: 'ROTATED', v: 'old-value' }, token);
      const second = await k.gql(SET_SECRET, { n: 'ROTATED', v: 'new-value' }, token);
      expect(second.data!.setSecret.createdAt).toBe(first.data!.setSecret.createdAt);
      expect(new Date(second.data!.setSecret.updatedAt).getTime()).toBeGreaterThanOrEqual(new Date(first.data!.setSecret.updatedAt).getTime());
      expect((await k.gql(`mutation { deleteSecret(name: "ROTATED") }`, {}, token)).data!.deleteSecret).toBe(true);
      expect((await k.gql(`mutation { deleteSecret(name: "ROTATED") }`, {}, token)).data!.deleteSecret).toBe(false);
    });

    it('rejects a bad name or an empty value as BAD_USER_INPUT', async () => {
      for (const [n, v] of [['1BAD', 'x'], ['has-dash', 'x'], ['OK_NAME', '']]) {
        const res = await k.gql(SET_SECRET, { n, v }, token);
        expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      }
    });

    it('stores values sealed, not in the clear', async () => {
      await k.gql(SET_SECRET, { n: 'SEALED', v: 'plain-text-value' }, token);
      const db = new pg.Client({ connectionString: k.databaseUrl });
      await db.connect();
      try {
        const { rows } = await db.query(`select value from secrets where owner = 'alice' and name = 'SEALED'`);
        expect(rows[0].value).toMatch(/^v1\./);
        expect(rows[0].value).not.toContain('plain-text-value');
        expect(Buffer.from(rows[0].value.slice(3), 'base64url').toString('latin1')).not.toContain('plain-text-value');
      } finally {
        await db.end();
      }
    });
  });

  describe('in a build that prints them', () => {
    let execution: Awaited<ReturnType<typeof runJob>>;

    beforeAll(async () => {
      for (const [n, v] of [['API_TOKEN', TOKEN], ['API_TOKEN_LONG', LONG_TOKEN], ['DB_PASSWORD', PASSWORD]]) {
        expect((await k.gql(SET_SECRET, { n, v }, token)).errors).toBeUndefined();
      }
      const yaml = jobYaml(
        'Leaky',
        [
          // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion, run in the container
          'echo "length: ${#API_TOKEN}"',
          'echo "whole: $API_TOKEN"',
          'printf "split: %s" "$(echo "$API_TOKEN" | cut -c1-10)"; sleep 0.5; echo "$API_TOKEN" | cut -c11-',
          'echo "long: $API_TOKEN_LONG"',
          'printf %s "$API_TOKEN" | base64; printf "user:%s" "$API_TOKEN" | base64',
          'set -x; true "$API_TOKEN" "$DB_PASSWORD"',
          `echo "url: https://admin:${encodeURIComponent(PASSWORD)}@db.invalid/"`,
          'tr "\\0" "\\n" < /proc/1/environ | grep -c API_TOKEN || true',
        ],
        ['secrets: [API_TOKEN, API_TOKEN_LONG, DB_PASSWORD]'],
      );
      execution = await runJob(k, token, yaml);
      // The archive is written after the run ends.
      await waitFor(async () => ((await getExecution(k, token, execution.id)).logUrl ? true : undefined), 30_000, 'the log to be archived');
    });

    const lines = (step: number) => execution.logs.filter((l: LogLineView) => l.step === step && l.stream !== 'SYSTEM').map((l) => l.text);

    it('gives each secret to the steps as an environment variable, not to the container', () => {
      expect(execution.status, execution.error ?? '').toBe('SUCCEEDED');
      expect(lines(0)).toEqual([`length: ${TOKEN.length}`]);
      expect(lines(7)).toEqual(['0']);
    });

    it('masks a secret printed whole, split across two writes, and as the prefix of another secret', () => {
      expect(lines(1)).toEqual([`whole: ${MASK}`]);
      expect(lines(2)).toEqual([`split: ${MASK}`]);
      expect(lines(3)).toEqual([`long: ${MASK}`]);
    });

    it('masks base64, set -x and URL-encoded forms', () => {
      expect(lines(4)[0]).toBe(MASK);
      expect(lines(4)[1]).toContain(MASK);
      expect(lines(5).join('\n')).toContain(`+ true ${MASK} '${MASK}'`);
      expect(lines(6)).toEqual([`url: https://admin:${MASK}@db.invalid/`]);
    });

    it('never stores, serves or archives a raw value: database chunks, archived log and GraphQL logs', async () => {
      const db = new pg.Client({ connectionString: k.databaseUrl });
      await db.connect();
      let stored: string;
      let lineCount: number;
      try {
        const { rows } = await db.query<{ text: string }>(`select text from log_chunks where execution_id = $1 order by seq`, [execution.id]);
        stored = rows.map((r) => r.text).join('\n');
        lineCount = rows.length;
      } finally {
        await db.end();
      }
      const archivedLog = await archivedNdjson(k.kiln.deps.pool, store, execution.id);
      const archived = await archivedText(k.kiln.deps.pool, store, execution.id, lineCount);
      const graphql = JSON.stringify(await logsOf(k, token, execution.id));
      for (const [where, text] of Object.entries({ stored, archivedNdjson: archivedLog, archivedText: archived, graphql })) {
        expect(text, where).toContain(MASK);
        for (const raw of FORBIDDEN) expect(text.includes(raw), `${where} contains ${raw}`).toBe(false);
      }
    });
  });

  it('fails a job that lists a secret its owner has not set, naming it', async () => {
    const e = await runJob(k, token, jobYaml('NeedsSecret', ['echo never'], ['secrets: [NOT_SET_ANYWHERE]']));
    expect(e.status).toBe('FAILED');
    expect(e.error).toBe('secret "NOT_SET_ANYWHERE" is not set for this job\'s owner (setSecret)');
  });
});
