// The request's and each attempt's cancellation: what AbortController did for them, as a plain
// object (src/resilience/cancellation.ts).
import { Cancellation, type CancelSignal } from '../../src/resilience/cancellation';

describe('Cancellation', () => {
  it('when it aborts, then it is aborted with the reason and every listener runs once, in order', () => {
    const cancellation = new Cancellation();
    const calls: string[] = [];
    cancellation.addEventListener('abort', () => calls.push('first'));
    cancellation.addEventListener('abort', () => calls.push('second'), { once: true });
    cancellation.addEventListener('abort', () => calls.push('third'));
    expect(cancellation.aborted).toBe(false);
    expect(cancellation.reason).toBeUndefined();

    const reason = new Error('deadline');
    cancellation.abort(reason);
    cancellation.abort(new Error('again'));

    expect(cancellation.aborted).toBe(true);
    expect(cancellation.reason).toBe(reason);
    expect(calls).toEqual(['first', 'second', 'third']);
  });

  it('when it aborts without a reason, then the reason is an AbortError, as AbortController gives', () => {
    const cancellation = new Cancellation();
    const controller = new AbortController();
    cancellation.abort();
    controller.abort();
    expect(cancellation.reason).toBeInstanceOf(DOMException);
    expect((cancellation.reason as DOMException).name).toBe(
      (controller.signal.reason as DOMException).name,
    );
  });

  it('when a listener is removed, or added twice, then it runs as EventTarget would: never, or once', () => {
    const cancellation = new Cancellation();
    const calls: string[] = [];
    const removedFirst = (): number => calls.push('removed first');
    const removedLater = (): number => calls.push('removed later');
    const twice = (): number => calls.push('twice');
    cancellation.addEventListener('abort', removedFirst);
    cancellation.addEventListener('abort', twice);
    cancellation.addEventListener('abort', twice);
    cancellation.addEventListener('abort', removedLater);
    cancellation.removeEventListener('abort', removedFirst);
    cancellation.removeEventListener('abort', removedLater);
    cancellation.removeEventListener('abort', () => undefined);

    cancellation.abort();

    expect(calls).toEqual(['twice']);
  });

  it('when a listener is added after the abort, then it is not called (read `aborted` first)', () => {
    const cancellation = new Cancellation();
    cancellation.abort(new Error('gone'));
    const late = jest.fn();
    cancellation.addEventListener('abort', late);
    expect(late).not.toHaveBeenCalled();
  });

  it('when a listener throws, then the others still run and the error is thrown on the next tick, as EventTarget reports it', () => {
    const cancellation = new Cancellation();
    const after = jest.fn();
    cancellation.addEventListener('abort', () => {
      throw new Error('listener bug');
    });
    cancellation.addEventListener('abort', after);
    // The next tick's callback is kept and run here: thrown for real, jest would fail the run.
    const ticks: (() => void)[] = [];
    const nextTick = jest
      .spyOn(process, 'nextTick')
      .mockImplementation((callback) => void ticks.push(callback as () => void));
    try {
      cancellation.abort();
    } finally {
      nextTick.mockRestore();
    }
    expect(after).toHaveBeenCalledTimes(1);
    expect(ticks).toHaveLength(1);
    expect(() => ticks[0]?.()).toThrow('listener bug');
  });

  it('when code is written for a signal, then an AbortSignal and a Cancellation both serve it', () => {
    const stopsOn = (signal: CancelSignal): (() => boolean) => {
      let stopped = false;
      signal.addEventListener('abort', () => (stopped = true), { once: true });
      return () => stopped;
    };
    const controller = new AbortController();
    const cancellation = new Cancellation();
    const viaController = stopsOn(controller.signal);
    const viaCancellation = stopsOn(cancellation);
    controller.abort();
    cancellation.abort();
    expect([viaController(), viaCancellation()]).toEqual([true, true]);
  });
});
