// The local NATS JetStream server for broker tests and incident drills (TEST_NATS_URL, default
// nats://127.0.0.1:4222). Each test file (each drill) uses its own NATS_SUBJECT_PREFIX, so its
// subjects and streams are its own: files run in any order and in parallel, and their streams are
// deleted at the end.
import { randomBytes } from 'node:crypto';
import {
  connect,
  headers as natsHeaders,
  type JetStreamManager,
  type NatsConnection,
  type StoredMsg,
} from 'nats';
import { namingOf, type Naming } from '../../../src/broker/nats-broker';

export const TEST_NATS_URL = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

export interface TestNats {
  readonly prefix: string;
  readonly naming: Naming;
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  /** Publishes JSON (or raw bytes) to a prefixed subject through JetStream. */
  publish(
    subject: string,
    body: unknown,
    extra?: { msgId?: string; headers?: Record<string, string> },
  ): Promise<void>;
  /** Messages stored on a stream under a prefixed subject, oldest first. */
  messages(stream: 'ORDERS' | 'PAYMENTS', subject: string): Promise<StoredMsg[]>;
  /** Deletes this prefix's streams and closes the connection. */
  close(): Promise<void>;
}

export async function openTestNats(): Promise<TestNats> {
  const prefix = `t${randomBytes(4).toString('hex')}`;
  const naming = namingOf(prefix);
  const nc = await connect({ servers: TEST_NATS_URL, name: 'ops-service-tests' });
  const jsm = await nc.jetstreamManager();
  const js = nc.jetstream();
  return {
    prefix,
    naming,
    nc,
    jsm,
    async publish(subject, body, extra = {}) {
      const data = body instanceof Uint8Array ? body : JSON.stringify(body);
      const h = natsHeaders();
      for (const [key, value] of Object.entries(extra.headers ?? {})) h.set(key, value);
      await js.publish(naming.subject(subject), data, {
        headers: h,
        ...(extra.msgId === undefined ? {} : { msgID: extra.msgId }),
      });
    },
    async messages(stream, subject) {
      const name = naming.stream(stream);
      const info = await jsm.streams.info(name).catch(() => undefined);
      if (info === undefined) return [];
      const found: StoredMsg[] = [];
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq += 1) {
        const message = await jsm.streams.getMessage(name, { seq }).catch(() => undefined);
        if (message?.subject === naming.subject(subject)) found.push(message);
      }
      return found;
    },
    async close() {
      for (const stream of ['ORDERS', 'PAYMENTS'] as const) {
        await jsm.streams.delete(naming.stream(stream)).catch(() => false);
      }
      await nc.close();
    },
  };
}
