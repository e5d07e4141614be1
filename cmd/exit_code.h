/*
 * exit_code.h — the exit statuses of every ftvm subcommand, in one place (the README's "Exit
 * status" lists the same). A subcommand that runs a guest exits with the guest's own status when
 * it powers off; everything else is one of these.
 */
#ifndef FTVM_CMD_EXIT_CODE_H
#define FTVM_CMD_EXIT_CODE_H

enum ftvm_exit {
	FTVM_EXIT_OK = 0,          /* done; a guest powered off cleanly or was ended by Ctrl-A x */
	FTVM_EXIT_FAILURE = 1,     /* files, devices, the network, a run-time error */
	FTVM_EXIT_USAGE = 2,       /* bad command line or option value */
	FTVM_EXIT_DIVERGED = 3,    /* replay, backup: the guest left the recorded path */
	FTVM_EXIT_BAD_LOG = 4,     /* replay: a corrupt, truncated or foreign log */
	FTVM_EXIT_INCOMPLETE = 5,  /* replay: the log ends without END */
	FTVM_EXIT_HALTED = 6,      /* primary, backup: lost the arbiter, the VM halted for good */
	FTVM_EXIT_SIGNAL_BASE = 128, /* + the signal number that ended the run, as a shell reports it */
};

/* `ftvm arbiter` keeps the meaning its scripts test: claim lost 1, the area unusable 3. */
#define FTVM_EXIT_CLAIM_LOST FTVM_EXIT_FAILURE
#define FTVM_EXIT_ARBITER_FAILED 3

/* The exit status for a guest's test-finisher status: 0, or its failure code (a failure whose
 * low byte is 0 still fails, with 1). */
static inline int ftvm_exit_of_guest(int finisher_status)
{
	if (finisher_status == 0)
		return FTVM_EXIT_OK;
	return (finisher_status & 0xff) ? finisher_status & 0xff : FTVM_EXIT_FAILURE;
}

#endif
