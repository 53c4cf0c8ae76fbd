// The breakable TCP proxy: moved to scripts/incidents/kit/ (the incident drills inject their
// faults with it); tests keep importing it from here.
export * from '../../../scripts/incidents/kit/tcp-proxy';
