// Authentication as the runtime assembles it (issue #15): the key source (a JWKS file or URL),
// the verifier the request path uses, the startup check that loads the first key set before the
// service is ready, and the resource that stops the background refresh. With AUTH_MODE=off there
// is none of it, and the start says so (`auth.disabled`, warn; config allows it only in
// development and test).
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createJwksFileSource,
  createJwksUrlSource,
  type JwksError,
  type KeySource,
  type KeysLoaded,
} from '../auth/jwks';
import { createVerifier } from '../auth/verifier';
import type { AppConfig } from '../config/schema';
import type { Resource, StartupCheck } from '../contracts';
import type { TokenVerifier } from '../http/edge/auth.middleware';
import type { Logger } from '../telemetry/logger';
import { outsideRequest } from '../telemetry/request-scope';

export interface RuntimeAuth {
  readonly verifier: TokenVerifier;
  readonly startupCheck: StartupCheck;
  readonly resource: Resource;
}

/** Between two attempts to load the first key set from AUTH_JWKS_URL. */
const LOAD_RETRY_MS = 500;

export function createRuntimeAuth(
  auth: AppConfig['auth'],
  logger: Logger,
): RuntimeAuth | undefined {
  if (auth.mode === 'off') {
    logger.warn('auth.disabled', {
      auth_mode: 'off',
      tenant: 'default',
      reason: 'AUTH_MODE=off: every /v1 call is anonymous (allowed in development and test only)',
    });
    return undefined;
  }
  const algorithms = auth.algorithms.split(',').map((name) => name.trim());
  const source =
    auth.jwksUrl === '' ? fileSource(auth, algorithms) : urlSource(auth, algorithms, logger);
  const verifier = createVerifier({
    keys: source,
    issuer: auth.issuer,
    audience: auth.audience,
    clockToleranceMs: auth.clockToleranceMs,
    algorithms,
    tenantClaim: auth.tenantClaim,
  });
  return {
    verifier,
    startupCheck: {
      name: 'auth-keys',
      run: async (signal) => {
        await loadFirstKeys(source, auth.jwksUrl !== '', signal, logger);
        const status = source.status();
        logger.info('auth.keys_loaded', {
          trigger: 'load',
          source: auth.jwksUrl === '' ? 'file' : 'url',
          kids: status.kids,
          key_count: status.keyCount,
        });
      },
    },
    resource: {
      name: 'auth-keys',
      close: () => {
        source.close();
        return Promise.resolve();
      },
    },
  };
}

function fileSource(auth: AppConfig['auth'], algorithms: readonly string[]): KeySource {
  return createJwksFileSource({ path: auth.jwksFile, algorithms });
}

function urlSource(
  auth: AppConfig['auth'],
  algorithms: readonly string[],
  logger: Logger,
): KeySource {
  return createJwksUrlSource({
    url: auth.jwksUrl,
    timeoutMs: auth.jwksTimeoutMs,
    cooldownMs: auth.jwksCooldownMs,
    refreshMs: auth.jwksRefreshMs,
    algorithms,
    // Cached keys stay in service: a provider outage does not make the service unready.
    onRefreshError: (error: JwksError) =>
      outsideRequest(() =>
        logger.warn('auth.jwks_refresh_failed', {
          error: error.message,
          keys_in_service: true,
        }),
      ),
    onKeysLoaded: (loaded: KeysLoaded) => {
      if (loaded.trigger === 'load') return;
      outsideRequest(() =>
        logger.info('auth.keys_loaded', {
          trigger: loaded.trigger,
          source: 'url',
          kids: loaded.kids,
          key_count: loaded.keyCount,
          rejected: loaded.rejected,
        }),
      );
    },
  });
}

/** A file loads once (a bad file is a startup failure); a URL is retried until startup gives up. */
async function loadFirstKeys(
  source: KeySource,
  retry: boolean,
  signal: AbortSignal,
  logger: Logger,
): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      await source.load(signal);
      return;
    } catch (error) {
      if (!retry || signal.aborted) throw error;
      if (attempt === 1 || attempt % 10 === 0) {
        logger.warn('auth.jwks_unavailable', {
          attempt,
          error: error instanceof Error ? error.message : String(error),
        });
      }
      await sleep(LOAD_RETRY_MS, undefined, { signal });
    }
  }
}
