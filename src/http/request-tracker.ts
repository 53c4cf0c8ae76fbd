// Counts the requests in flight and holds each one's AbortSignal, which fires when its own
// deadline passes, at the drain deadline, or when its connection closes before the answer was
// sent. The lifecycle machine hears about it only through events (IN_FLIGHT_ZERO); shutdown asks
// it what is still running (`describe`).

import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Cancellation, type CancelSignal } from '../resilience/cancellation';
import { routeOf } from './route-of';

export interface TrackedRequest {
  /** Its cancellation (a plain object, not an AbortController: see resilience/cancellation.ts). */
  controller: Cancellation | undefined;
  readonly response: ServerResponse;
  readonly requestId: string;
  /** Epoch ms the request was accepted. */
  readonly startedAt: number;
  /** The request's own deadline timer, cleared when it ends. */
  deadline: NodeJS.Timeout | undefined;
  /** It holds a handler slot (its body is in and load shedding let it through). */
  handling: boolean;
}

type CountListener = (inFlight: number) => void;

/** One in-flight request as shutdown.pending_work and /lifecycle show it. */
export interface InFlightRequest {
  readonly method: string;
  /** The route template, or `(unmatched)` before routing. */
  readonly route: string;
  readonly age_ms: number;
  readonly request_id: string;
  /** `body`: still receiving its body; `handler`: running. */
  readonly stage: 'body' | 'handler';
}

export class RequestTracker {
  private readonly active = new Set<TrackedRequest>();
  private readonly listeners = new Set<CountListener>();
  private handlers = 0;

  /** Every request accepted and not yet answered (the drain waits for all of them). */
  get inFlight(): number {
    return this.active.size;
  }

  /**
   * Requests running their handlers: the ones load shedding limits. A request still receiving
   * its body is in flight but holds no slot, so slow uploads cannot starve the handlers.
   */
  get handling(): number {
    return this.handlers;
  }

  begin(response: ServerResponse, requestId: string): TrackedRequest {
    const request: TrackedRequest = {
      controller: undefined,
      response,
      requestId,
      startedAt: Date.now(),
      deadline: undefined,
      handling: false,
    };
    this.active.add(request);
    return request;
  }

  /** The request takes a handler slot (its body has arrived). */
  startHandling(request: TrackedRequest): void {
    if (request.handling || !this.active.has(request)) return;
    request.handling = true;
    this.handlers += 1;
  }

  end(request: TrackedRequest): void {
    if (!this.active.delete(request)) return;
    if (request.handling) {
      request.handling = false;
      this.handlers -= 1;
    }
    if (request.deadline !== undefined) clearTimeout(request.deadline);
    // Ended without the whole answer sent: the client went away (or the drain closed its socket).
    // Work still running for it stops.
    if (request.controller !== undefined && !request.response.writableFinished) {
      request.controller.abort(new Error('the connection closed before the answer'));
    }
    const count = this.active.size;
    for (const listener of this.listeners) listener(count);
  }

  /** The request's signal, made on first use so requests that never ask pay nothing. */
  signalOf(request: TrackedRequest): CancelSignal {
    return signalOf(request);
  }

  /** Aborts one request's work (its own deadline passed). */
  abort(request: TrackedRequest, reason: Error): void {
    this.signalOf(request);
    request.controller?.abort(reason);
  }

  /** Aborts every request still in flight; returns how many there were. */
  abortAll(reason: Error): number {
    const count = this.active.size;
    for (const request of this.active) request.controller?.abort(reason);
    return count;
  }

  /**
   * Intake has stopped: every response not yet started will carry `Connection: close`, so its
   * client reconnects (to another instance) instead of reusing this socket, and the socket closes
   * once the response is sent.
   */
  closeConnectionsAfterResponse(): void {
    for (const { response } of this.active) {
      if (!response.headersSent) response.setHeader('Connection', 'close');
    }
  }

  /** The sockets of the requests in flight (the drain never closes them under a request). */
  socketsInUse(): Set<Socket> {
    const sockets = new Set<Socket>();
    for (const { response } of this.active) {
      if (response.socket !== null) sockets.add(response.socket);
    }
    return sockets;
  }

  /** The oldest requests still in flight, for "what is holding shutdown". */
  describe(limit: number, now = Date.now()): InFlightRequest[] {
    const list: InFlightRequest[] = [];
    for (const request of this.active) {
      const req = request.response.req;
      list.push({
        method: req.method ?? '',
        route: routeOf(req),
        age_ms: now - request.startedAt,
        request_id: request.requestId,
        stage: request.handling ? 'handler' : 'body',
      });
    }
    return list.sort((a, b) => b.age_ms - a.age_ms).slice(0, limit);
  }

  /** Calls `listener` with the new count whenever a request ends. */
  onRequestEnd(listener: CountListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** The tracked request's signal (see RequestTracker.signalOf). */
export function signalOf(request: TrackedRequest): CancelSignal {
  request.controller ??= new Cancellation();
  return request.controller;
}
