// What a feature module (the orders API, ...) implements to plug into the runtime: its routes,
// the checks startup waits for, its background workers and the resources to close. Declared here,
// below both sides: the runtime drives these contracts, the domain implements them, and neither
// imports the other.
import type { Router } from 'express';
import type { LoadedConfig } from './config/load-config';
import type { Logger } from './telemetry/logger';
import type { Telemetry } from './telemetry/telemetry';

/** A background worker (the payments consumer, the outbox relay): stops after its current unit. */
export interface Worker {
  readonly name: string;
  stop(): Promise<void>;
  /**
   * The drain was cut short (drain timeout, second signal): give up the current unit now, so it
   * holds no connection the resources are about to close. Its work is retried by the next run of
   * whichever process comes next (outbox rows stay unpublished, messages are redelivered).
   */
  abort?(): void;
}

/** Something that must answer before the service is ready (the database). */
export interface StartupCheck {
  readonly name: string;
  /** Resolves when the dependency is usable; `signal` aborts when startup is abandoned. */
  run(signal: AbortSignal): Promise<void>;
}

/**
 * Something to close after the drain and before the telemetry flush (a database pool, a broker
 * connection), in the order the module declares them.
 */
export interface Resource {
  readonly name: string;
  /** Its own budget; without one it gets an equal share of SHUTDOWN_CLOSE_TIMEOUT_MS. */
  readonly closeTimeoutMs?: number;
  close(): Promise<void>;
}

/**
 * What a resource's close() rejects with when it stopped waiting by itself (its own timer ran
 * out before the resource had closed): logged as `resource.close_timeout`, never as closed.
 */
export class ResourceCloseTimeout extends Error {
  override readonly name = 'ResourceCloseTimeout';
}

/** What a module is given to build itself. */
export interface ModuleContext {
  readonly loaded: LoadedConfig;
  readonly logger: Logger;
  readonly telemetry: Telemetry;
  /** Reports a dependency's state to the lifecycle machine (readiness follows for essentials). */
  reportDependency(name: string, up: boolean, reason: string): void;
}

/** A feature plugged into the runtime: its routes, startup checks, workers and resources. */
export interface RuntimeModule {
  readonly routers?: readonly Router[];
  readonly startupChecks?: readonly StartupCheck[];
  readonly workers?: readonly Worker[];
  /** Closed in this order. */
  readonly resources?: readonly Resource[];
  /** Dependencies whose loss makes the service unready. */
  readonly essentialDependencies?: readonly string[];
}

export type ModuleFactory = (context: ModuleContext) => RuntimeModule;
