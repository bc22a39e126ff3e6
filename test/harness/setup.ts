/** Preloaded by bun test (bunfig.toml): after the last test of the run, stop the Postgres server the harness started. */
import { afterAll } from 'bun:test';
import { stopPostgresServer } from './postgres.ts';

afterAll(() => stopPostgresServer());
