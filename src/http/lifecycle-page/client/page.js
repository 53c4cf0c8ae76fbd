// The lifecycle page's script (served by the ops listener, no build step, no dependencies):
// follows GET /lifecycle/stream and shows the active state on the chart, readiness, work in
// flight, dependencies, the transitions, and while shutting down the budgets counting down.
'use strict';

(function main() {
  const $ = (id) => document.getElementById(id);
  const states = Array.from(document.querySelectorAll('g.state'));
  /** Server clock minus ours, so countdowns are right even when the clocks differ. */
  let skewMs = 0;
  let last;

  function text(id, value) {
    const element = $(id);
    if (element !== null)
      element.textContent = value === undefined || value === null ? '-' : String(value);
  }

  function row(cells) {
    const tr = document.createElement('tr');
    for (const cell of cells) {
      const td = document.createElement('td');
      td.textContent = cell === undefined || cell === null ? '' : String(cell);
      tr.appendChild(td);
    }
    return tr;
  }

  function replaceRows(id, rows) {
    const body = $(id);
    if (body === null) return;
    body.replaceChildren(...rows.map(row));
  }

  /** `draining.drain.waiting` is active, and so are `draining.drain` and `draining`. */
  function highlight(state) {
    for (const node of states) {
      const id = node.dataset.state;
      node.classList.toggle('active', id === state);
      node.classList.toggle('active-parent', state.startsWith(`${id}.`));
    }
  }

  /** Each shutdown step: its budget, and the time it has left while it runs. */
  function budgets(view) {
    const shutdown = view.shutdown;
    if (shutdown === undefined) return [];
    const now = Date.now() + skewMs;
    const b = shutdown.budgets_ms;
    const step = (name, budget, startedAt, endedAt, deadline) => {
      if (endedAt !== undefined) return [name, `${budget} ms`, 'done'];
      if (startedAt === undefined) return [name, `${budget} ms`, ''];
      const end = deadline === undefined ? Date.parse(startedAt) + budget : Date.parse(deadline);
      return [name, `${budget} ms`, `${Math.max(0, end - now)} ms left`];
    };
    return [
      step('delay', b.delay, shutdown.started_at, shutdown.intake_stopped_at),
      step(
        'drain',
        b.drain,
        shutdown.intake_stopped_at,
        shutdown.close_started_at,
        shutdown.drain_deadline,
      ),
      step('close', b.close, shutdown.close_started_at, shutdown.flush_started_at),
      step('flush', b.flush, shutdown.flush_started_at, undefined),
    ];
  }

  function render(view) {
    last = view;
    const state = view.state;
    document.body.dataset.state = state;
    text('state', state);
    highlight(state);
    // `readiness` is what GET /ready answers: ready, starting, degraded, draining or stopping.
    const ready = view.readiness === 'ready';
    text('readiness', ready ? 'ready: load balancers route here' : `not ready: ${view.readiness}`);
    $('readiness').dataset.ready = String(ready);
    const reasons = Object.entries(view.dependencies ?? {})
      .filter(([, dependency]) => dependency.status !== 'up')
      .map(
        ([name, dependency]) =>
          `${name}: ${dependency.status}${dependency.reason ? ` (${dependency.reason})` : ''}`,
      );
    if (!ready) reasons.unshift(`lifecycle: ${view.readiness}`);
    $('reasons').replaceChildren(
      ...reasons.map((reason) => {
        const li = document.createElement('li');
        li.textContent = reason;
        return li;
      }),
    );
    text('readiness-detail', ready ? 'GET /ready answers 200' : 'GET /ready answers 503');
    text('in-flight', view.in_flight);
    text('outbox-backlog', view.outbox_backlog);
    text('since', view.since === undefined ? undefined : view.since.slice(11, 23));
    text('exit-code', view.exit_code);
    const breakers = view.breakers ?? {};
    replaceRows(
      'dependencies',
      Object.entries(view.dependencies ?? {}).map(([name, dependency]) => [
        name,
        dependency.status,
        breakers[name] ?? '',
        dependency.reason ?? '',
      ]),
    );
    $('shutdown-panel').hidden = view.shutdown === undefined;
    replaceRows('budgets', budgets(view));
    text('pending', view.pending === undefined ? '' : JSON.stringify(view.pending, null, 2));
    replaceRows(
      'history',
      (view.history ?? [])
        .slice()
        .reverse()
        .map((record) => [record.at.slice(11, 23), record.from, record.to, record.cause]),
    );
  }

  function connection(status, message) {
    document.body.dataset.connection = status;
    text('connection', message);
  }

  const stream = new EventSource('/lifecycle/stream');
  stream.addEventListener('open', () => connection('live', 'live'));
  stream.addEventListener('lifecycle', (event) => {
    const view = JSON.parse(event.data);
    skewMs = Date.parse(view.now) - Date.now();
    render(view);
  });
  stream.addEventListener('exit', (event) => {
    const exit = JSON.parse(event.data);
    stream.close();
    const view = { ...(last ?? {}), state: exit.state, exit_code: exit.exit_code };
    render(view);
    connection('closed', `the process is exiting with code ${exit.exit_code}`);
  });
  stream.addEventListener('error', () => {
    if (stream.readyState === EventSource.CLOSED) connection('closed', 'stream closed');
    else connection('reconnecting', 'connection lost: reconnecting (the process may have exited)');
  });
  // Budgets count down between the server's pushes.
  setInterval(() => {
    if (last !== undefined && last.shutdown !== undefined) replaceRows('budgets', budgets(last));
  }, 200);
})();
