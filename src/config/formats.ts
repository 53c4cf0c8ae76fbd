// Value formats for the config schema. Each one validates strictly (a JSON file must hold the
// right type) and coerces only strings from the environment. Every message says what was
// expected, so a config problem reads as one clear line.
import convict from 'convict';
import { SUPPORTED_ALGORITHMS } from '../auth/algorithms';

function assertThat(condition: boolean, expected: string): asserts condition {
  if (!condition) throw new Error(expected);
}

function integer(min: number, max: number, what: string): convict.Format {
  return {
    validate(value: unknown) {
      assertThat(
        typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max,
        `expected ${what}`,
      );
    },
    coerce(value: unknown) {
      if (typeof value !== 'string') return value;
      // `Number('')` is 0 and `parseInt('12abc')` is 12: accept only whole decimal numbers.
      return /^\s*-?\d+\s*$/.test(value) ? Number(value) : value;
    },
  };
}

const HOSTNAME =
  /^(?=.{1,253}$)[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

function isUrlWithScheme(value: string, schemes: readonly string[]): boolean {
  try {
    const url = new URL(value);
    return schemes.includes(url.protocol.replace(/:$/, '')) && url.host.length > 0;
  } catch {
    return false;
  }
}

function urlOrEmpty(schemes: readonly string[]): convict.Format {
  const list = schemes.map((s) => `${s}://`).join(' or ');
  return {
    validate(value: unknown) {
      assertThat(
        typeof value === 'string' && (value === '' || isUrlWithScheme(value, schemes)),
        `expected a ${list} URL, or empty to turn it off`,
      );
    },
  };
}

/** Registers the project's formats with convict; idempotent. */
export function registerFormats(): void {
  convict.addFormats({
    port: integer(0, 65535, 'a TCP port from 0 to 65535 (0 picks a free port)'),
    'duration-ms': integer(0, 3_600_000, 'a whole number of milliseconds from 0 to 3600000'),
    'long-duration-ms': integer(
      60_000,
      31_536_000_000,
      'a whole number of milliseconds from 60000 (a minute) to 31536000000 (a year)',
    ),
    'positive-int': integer(1, 1_000_000, 'a whole number from 1 to 1000000'),
    'non-negative-int': integer(0, 1_000_000, 'a whole number from 0 to 1000000'),
    boolean: {
      validate(value: unknown) {
        assertThat(typeof value === 'boolean', 'expected true or false');
      },
      coerce(value: unknown) {
        if (value === 'true') return true;
        if (value === 'false') return false;
        return value;
      },
    },
    ratio: {
      validate(value: unknown) {
        assertThat(
          typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= 1,
          'expected a number from 0 to 1',
        );
      },
      coerce(value: unknown) {
        if (typeof value !== 'string') return value;
        return /^\s*(\d+(\.\d*)?|\.\d+)\s*$/.test(value) ? Number(value) : value;
      },
    },
    host: {
      validate(value: unknown) {
        assertThat(
          typeof value === 'string' &&
            (IPV4.test(value) || HOSTNAME.test(value) || value === '::' || value === '::1'),
          'expected a host name or IP address, for example 127.0.0.1 or 0.0.0.0',
        );
      },
    },
    'non-empty-string': {
      validate(value: unknown) {
        assertThat(
          typeof value === 'string' && value.trim().length > 0,
          'expected a non-empty string',
        );
      },
    },
    'otlp-endpoint': urlOrEmpty(['http', 'https']),
    'postgres-url': urlOrEmpty(['postgres', 'postgresql']),
    'redis-url': urlOrEmpty(['redis', 'rediss']),
    'http-url-or-empty': urlOrEmpty(['http', 'https']),
    'jwt-algorithms': {
      validate(value: unknown) {
        const names = typeof value === 'string' ? value.split(',').map((n) => n.trim()) : [];
        assertThat(
          names.length > 0 &&
            names.every((name) => (SUPPORTED_ALGORITHMS as readonly string[]).includes(name)),
          `expected a comma-separated list of ${SUPPORTED_ALGORITHMS.join(', ')} (asymmetric signatures only)`,
        );
      },
    },
    'redis-key-prefix': {
      validate(value: unknown) {
        assertThat(
          typeof value === 'string' && /^[\x21-\x7e]{1,64}$/.test(value),
          'expected 1-64 printable ASCII characters without spaces',
        );
      },
    },
    'nats-url': {
      validate(value: unknown) {
        assertThat(
          typeof value === 'string' &&
            value
              .split(',')
              .every((part) => part === '' || isUrlWithScheme(part.trim(), ['nats', 'tls'])),
          'expected nats:// URLs separated by commas, or empty to run without a broker',
        );
      },
    },
    'subject-prefix': {
      validate(value: unknown) {
        assertThat(
          typeof value === 'string' && /^([A-Za-z0-9_-]{1,32})?$/.test(value),
          'expected empty, or 1-32 letters, digits, "_" or "-" (one subject token)',
        );
      },
    },
    inspect: {
      validate(value: unknown) {
        assertThat(
          typeof value === 'string' &&
            (value === '' || value === 'sky' || isUrlWithScheme(value, ['ws', 'wss', 'websocket'])),
          'expected empty (off), "sky", or websocket://host:port',
        );
      },
    },
  });
}
