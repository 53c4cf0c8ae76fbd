// The service as a child process: moved to scripts/incidents/kit/ so `npm run incident` (compiled
// without the tests) shares it; tests keep importing it from here.
export * from '../../scripts/incidents/kit/service-process';
