import { describe, expect, it } from 'vitest';
import { ArtifactError } from '../src/runner/artifacts.js';
import { RunRefusedError } from '../src/runner/containerSpec.js';
import { AbortError } from '../src/runner/docker/docker.js';
import { ImageUnavailableError } from '../src/runner/docker/images.js';
import { InfrastructureError } from '../src/runner/infrastructure.js';
import { CheckoutError } from '../src/runner/workspace.js';
import { MissingSecretsError } from '../src/secrets/executionSecrets.js';
import { SecretUnreadableError } from '../src/secrets/SecretBox.js';
import { errorEnding } from '../src/worker/run/endings.js';

describe('errorEnding: what each error thrown by a run comes to', () => {
  const refused = new RunRefusedError('resources.cpus 64 exceeds this server\'s maximum of 4 (KILN_MAX_CPUS)');
  it.each<[string, unknown, ReturnType<typeof errorEnding>]>([
    ['InfrastructureError', new InfrastructureError('the container stopped while a step ran'), 'HANDED_BACK'],
    ['a refused Docker socket', Object.assign(new Error('connect ECONNREFUSED /var/run/docker.sock'), { code: 'ECONNREFUSED' }), 'HANDED_BACK'],
    ['Postgres shutting down (57P01)', Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }), 'HANDED_BACK'],
    ['RunRefusedError', refused, 'FAILED'],
    ['MissingSecretsError', new MissingSecretsError(['TOKEN']), 'FAILED'],
    ['SecretUnreadableError', new SecretUnreadableError('TOKEN'), 'FAILED'],
    ['ImageUnavailableError', new ImageUnavailableError('nope:latest', 'not found'), 'FAILED'],
    ['CheckoutError, even when it mentions a lost connection', new CheckoutError('cannot fetch: ECONNRESET'), 'FAILED'],
    ['ArtifactError', new ArtifactError('artifact "out" could not be stored'), 'FAILED'],
    ['any other error', new Error('something else'), 'FAILED'],
    ['AbortError with no stop recorded', new AbortError(), 'FAILED'],
  ])('%s', (_title, err, ending) => {
    expect(errorEnding(err, false)).toBe(ending);
  });

  it.each([new AbortError(), new InfrastructureError('engine gone'), new Error('git killed')])('leaves a stopped run to its stop: %s', (err) => {
    expect(errorEnding(err, true)).toBe('STOPPED');
  });
});
