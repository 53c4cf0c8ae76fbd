import { readFileSync } from 'node:fs';
import path from 'node:path';
import { LIFECYCLE_DIAGRAM, readSection } from '../../scripts/readme-sections';
import { describeEvent, toMermaid } from '../../machines/lifecycle.diagram';
import { lifecycleMachine } from '../../machines/lifecycle.machine';

describe('the lifecycle diagram', () => {
  const diagram = toMermaid(lifecycleMachine);

  it('when the machine changes, then the README copy must be regenerated (npm run lifecycle:diagram -- --write)', () => {
    const readme = readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
    expect(readSection(readme, LIFECYCLE_DIAGRAM)).toBe(`\`\`\`mermaid\n${diagram}\n\`\`\``);
  });

  it('when rendered, then it shows the five phases in order, the closing step, and every deadline by name', () => {
    expect(diagram.startsWith('stateDiagram-v2\n  [*] --> starting')).toBe(true);
    for (const edge of [
      'starting --> ready: startup done',
      'ready --> draining: SIGNAL',
      'delaying --> drain: after SHUTDOWN_DELAY',
      'waiting --> closing: always [drainComplete]',
      'drain --> closing: after DRAIN_TIMEOUT',
      'closing --> flushing: closeResources done',
      'closing --> flushing: after CLOSE_TIMEOUT',
      'starting --> closing: after STARTUP_TIMEOUT',
      'flushing --> stopped: after FLUSH_TIMEOUT',
      'stopped --> [*]',
    ]) {
      expect(diagram).toContain(edge);
    }
  });

  it('when XState event names are described, then they read as words', () => {
    expect(describeEvent('xstate.done.actor.startup')).toBe('startup done');
    expect(describeEvent('xstate.error.actor.flushTelemetry')).toBe('flushTelemetry failed');
    expect(describeEvent('xstate.after.DRAIN_TIMEOUT.lifecycle.draining.drain')).toBe(
      'after DRAIN_TIMEOUT',
    );
    expect(describeEvent('SIGNAL')).toBe('SIGNAL');
  });
});
