// The orders API client that never rejects: moved to scripts/incidents/kit/ (the incident drills'
// load uses it); tests keep importing it from here.
export * from '../../../scripts/incidents/kit/orders-client';
