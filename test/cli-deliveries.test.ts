import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runKilnCli } from './helpers/cliProcess.js';
import { startHookReceiver, type HookReceiver } from './helpers/hookReceiver.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { submit } from './helpers/ledger.js';

/** `kiln deliveries <job>` shows what Job.deliveries has (issue 14; docs/design.md#notifications). */

interface CliDelivery {
  id: string;
  event: string;
  channel: string;
  status: string;
  attempts: number;
  responseCode: number | null;
}

let k: TestKiln;
let receiver: HookReceiver;
let env: Record<string, string>;
let dir: string;

beforeAll(async () => {
  receiver = await startHookReceiver();
  // The first try is answered 503, the second 200: the delivery shows two tries.
  receiver.answer = (n) => ({ status: n === 0 ? 503 : 200 });
  k = await startTestKiln({ env: { KILN_EXECUTOR: 'noop', KILN_WEBHOOK_ALLOW: '127.0.0.1/32' } });
  dir = await mkdtemp(path.join(tmpdir(), 'kiln-cli-deliveries-'));
  env = { KILN_URL: k.url, KILN_TOKEN: await k.token('dana'), KILN_CREDENTIALS_FILE: path.join(dir, 'no-login.json') };
});
afterAll(async () => {
  await k?.stop();
  await receiver?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('kiln deliveries', () => {
  it('says there are none yet, then lists the delivery with its event, status and tries, as table and JSON', async () => {
    const yaml = `jobs:\n  - name: flaky\n    schedule: "0 0 1 1 *"\n    steps: [{run: "exit 1"}]\n    notify:\n      - { on: [failed], webhook: { url: "${receiver.url}/hook" } }\n`;
    await submit(k.gql, env.KILN_TOKEN!, yaml);

    const none = await runKilnCli(['deliveries', 'flaky'], env);
    expect(none.code, none.stderr).toBe(0);
    expect(none.stdout + none.stderr).toContain('flaky has no notification deliveries yet');

    const ran = await runKilnCli(['trigger', 'flaky'], env);
    expect(ran.code, ran.stderr).toBe(0);
    await receiver.waitFor(2);
    const list = await waitFor(async () => {
      const r = await runKilnCli(['deliveries', 'flaky', '--json'], env);
      expect(r.code, r.stderr).toBe(0);
      const d = (JSON.parse(r.stdout) as { deliveries: CliDelivery[] }).deliveries;
      return d.length === 1 && d[0]!.status === 'DELIVERED' ? d : undefined;
    }, 20_000, 'the delivery recorded DELIVERED');
    expect(list[0]).toMatchObject({ event: 'failed', channel: 'webhook', status: 'DELIVERED', attempts: 2, responseCode: 200 });
    expect(receiver.received.map((r) => r.headers['x-kiln-delivery'])).toEqual([list[0]!.id, list[0]!.id]);

    const table = await runKilnCli(['deliveries', 'flaky'], env);
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/CREATED\s+EVENT\s+CHANNEL\s+TARGET\s+STATUS\s+TRIES\s+LAST ANSWER\s+ID/);
    expect(lines[1]).toContain('failed');
    expect(lines[1]).toContain('DELIVERED');
    expect(lines[1]).toContain(list[0]!.id);

    const bad = await runKilnCli(['deliveries', 'flaky', '--limit', '0'], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--limit takes 1 to/);
  });
});
