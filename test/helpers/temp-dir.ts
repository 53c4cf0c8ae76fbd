// Temporary directories: moved to scripts/incidents/kit/; tests keep importing them from here.
export * from '../../scripts/incidents/kit/temp-dir';
