/*
 * vm_command.c — the steps every subcommand that runs a VM shares (see vm_command.h); the roles
 * are cmd_run.c, cmd_record.c, cmd_replay.c, cmd_primary.c and cmd_backup.c.
 */
#define DIAG_MODULE "vm"
#include "cmd/vm_command.h"

#include <stdio.h>
#include <string.h>

#include "cmd/exit_code.h"
#include "util/diag.h"

/* How long an ending node waits for its last job's client to read the outcome. */
#define VM_COMMAND_LINGER_MS 2000

/* Steps 1 and 2: 0 to go on, else *code is the exit status. */
static int parse(struct vm_command *c, void *self, int argc, char **argv, int *code)
{
	const struct vm_role *role = c->role;
	char err[512];
	bool help = false, done = false;

	if ((role->options && role->options(self, &argc, argv, &help, err, sizeof(err))) ||
	    run_options_parse(argc, argv, &c->opts, err, sizeof(err))) {
		fprintf(stderr, "ftvm %s: %s\n", role->name, err);
		*code = FTVM_EXIT_USAGE;
		return -1;
	}
	if (help || c->opts.help) {
		role->usage(stdout);
		*code = FTVM_EXIT_OK;
		return -1;
	}
	int ret = role->check ? role->check(self, c, &done, err, sizeof(err)) : 0;
	if (done) {
		*code = ret;
		return -1;
	}
	if (ret < 0) {
		fprintf(stderr, "ftvm %s: %s\n", role->name, err);
		*code = FTVM_EXIT_USAGE;
		return -1;
	}
	return 0;
}

/* Steps 3 and 4: 0, or -errno with err. */
static int build(struct vm_command *c, char *err, size_t errlen)
{
	int ret = run_options_resolve(&c->opts, err, errlen);
	if (ret)
		return ret;
	if (c->role->world == VM_WORLD_LIVE)
		ret = run_world_open_live(&c->opts, &c->rw, &c->world, &c->mc, err, errlen);
	else if ((ret = run_world_prepare(&c->opts, &c->rw, err, errlen)) == 0)
		ret = run_world_machine_config(&c->opts, &c->rw, NULL, &c->mc, err, errlen);
	if (ret)
		return ret;
	return machine_create(&c->mc, &c->m, err, errlen);
}

/* What the hart did, for whoever asked for info diagnostics (FTVM_DIAG=info). */
static void report_hart(const struct machine *m)
{
	struct cpu_stats st;
	machine_cpu_stats(m, &st);
	diag_info("hart: %llu instructions, %llu of them in translated blocks (%llu blocks "
		  "translated), %llu exceptions, %llu interrupts",
		  (unsigned long long)machine_icount(m), (unsigned long long)st.jit_insns,
		  (unsigned long long)st.jit_translations, (unsigned long long)st.exceptions,
		  (unsigned long long)st.interrupts);
}

int vm_command_main(const struct vm_role *role, void *self, int argc, char **argv)
{
	struct vm_command c = { .role = role, .rw = { .scratch_fd = -1 } };
	char err[512] = "";
	int code;

	if (parse(&c, self, argc, argv, &code))
		return code;
	code = FTVM_EXIT_FAILURE;
	if (build(&c, err, sizeof(err)))
		goto fail;
	if (role->start && (code = role->start(self, &c, err, sizeof(err))) != 0) {
		if (code < 0)
			code = FTVM_EXIT_FAILURE;
		goto fail;
	}
	if (role->catch_signals)
		run_world_catch_signals(c.world);
	code = role->run(self, &c, err, sizeof(err));
	if (code >= 0)
		goto out;
	code = FTVM_EXIT_FAILURE;
fail:
	run_world_catch_signals(NULL);
	world_live_destroy(c.world);  /* restores the terminal before the message */
	c.world = NULL;
	fprintf(stderr, "ftvm %s: %s\n", role->name, err);
out:
	run_world_catch_signals(NULL);
	control_linger(c.ctl, VM_COMMAND_LINGER_MS);
	control_stop(c.ctl);
	if (c.m)
		report_hart(c.m);
	machine_destroy(c.m);
	if (role->stop)
		role->stop(self);
	world_live_destroy(c.world);
	run_world_release(&c.rw);
	return code;
}

int vm_command_finish(struct vm_command *c, enum machine_exit why, int status, const char *error_note)
{
	return run_world_finish(c->role->name, &c->world, why, status, error_note);
}
