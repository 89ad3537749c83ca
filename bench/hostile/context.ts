import type { KilnProcess } from '../lib/kilnProcess.js';
import type { Tally, User } from './api.js';

/** What every phase of the hostile benchmark shares: the server, its two users, the limits of a phase. */
export interface HostileContext {
  /** The `kiln start` under test; replaced when a phase leaves it unresponsive. */
  server: KilnProcess;
  /** Stops the server (SIGKILL if it must) and starts another on the same database; updates `server` and `url`. */
  restart(): Promise<void>;
  /** Its API's base URL (changes with a restart: it listens on port 0). */
  url: string;
  /** The attacker. */
  a: User;
  /** The bystander. */
  b: User;
  image: string;
  /** How long one attack may last. */
  windowMs: number;
  /** An attack is stopped early when the server's tree RSS passes this (the machine is shared). */
  rssCapMb: number;
}

/** What an attack tells the report beside the bystander's figures. */
export interface AttackReport {
  /** A's requests (or messages) by outcome. */
  tally: Tally;
  /** What A sent, when the tally's count of requests does not say it (a socket's messages). */
  requests?: string;
  /** What else happened: the job's end, bytes answered, the socket's close. */
  notes: string[];
}

/**
 * One attack by user A. `probe` may decline before anything is measured ("not measured: ...");
 * `prepare` builds what the attack needs (a big log, stored secrets) and is not measured; `run`
 * attacks until it is done or `signal` aborts at the window's end, and must return promptly then.
 */
export interface Attack {
  /** A short name for the table ("ping flood"). */
  label: string;
  /** What it does, with its figures, for the details. */
  name: string;
  probe?(ctx: HostileContext): Promise<string | null>;
  prepare?(ctx: HostileContext): Promise<void>;
  run(ctx: HostileContext, signal: AbortSignal): Promise<AttackReport>;
  /** After the phase: stop what the attack left running (its execution). */
  cleanup?(ctx: HostileContext): Promise<void>;
}
