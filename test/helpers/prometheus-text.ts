// The Prometheus text format reader: moved to scripts/incidents/kit/ (the incident drills read
// /metrics with it); tests keep importing it from here.
export * from '../../scripts/incidents/kit/prometheus-text';
