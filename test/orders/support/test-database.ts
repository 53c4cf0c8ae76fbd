// A fresh PostgreSQL database per test file: moved to scripts/incidents/kit/ (each incident drill
// gets one too); tests keep importing it from here.
export * from '../../../scripts/incidents/kit/test-database';
