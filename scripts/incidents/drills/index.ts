// Every incident drill, in the order `npm run incident -- all` runs them.
import type { Drill } from '../page';
import { brokerDown } from './broker-down';
import { collectorBlackHole } from './collector-black-hole';
import { databaseDown } from './database-down';
import { databaseSlow } from './database-slow';
import { drainTimeout, secondSignal } from './shutdown';
import { sigkillMidRequest } from './sigkill-mid-request';

export const DRILLS: readonly Drill[] = [
  databaseDown,
  databaseSlow,
  brokerDown,
  collectorBlackHole,
  sigkillMidRequest,
  drainTimeout,
  secondSignal,
];
