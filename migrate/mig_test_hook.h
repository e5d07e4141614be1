/*
 * mig_test_hook.h — a test-only stall at named steps of a migration's hand-over, so the tests can
 * kill a side or cut the link at exactly that step (tests/migrate/test_migrate.py, scenario
 * handover).
 *
 * It acts only when the environment names a file in FTVM_TEST_MIGRATE_STALL (documented as
 * test-only in docs/migration.md): at a step whose name the file holds, the process prints
 * "migration test hook: at STEP" to stderr and waits while the file still names it (for at most
 * 120 s), checking every 20 ms. Without the variable it costs one getenv() per step.
 */
#ifndef FTVM_MIGRATE_MIG_TEST_HOOK_H
#define FTVM_MIGRATE_MIG_TEST_HOOK_H

/* The steps: source-complete (COMPLETE sent, its ACK not yet awaited), source-handover (COMPLETE
 * confirmed, HANDOVER not yet sent), source-judged (the hand-over unconfirmed, the source's own
 * claim of the new epoch answered, nothing done on it yet), dest-complete (COMPLETE confirmed,
 * HANDOVER not yet read), dest-handover (HANDOVER read, the arbiter not yet asked). */
void mig_test_stall(const char *step);

#endif
