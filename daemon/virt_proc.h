/*
 * virt_proc.h — the remote program's procedures (virt_proc.c) as the server (virt_rpc.c) calls
 * them: each has its generated argument and answer codecs and a handler that translates one call
 * into the VM table's terms. A handler returns 0 with its answer filled, or a libvirt error code
 * (virErrorNumber) with a message for the user in err.
 */
#ifndef FTVM_DAEMON_VIRT_PROC_H
#define FTVM_DAEMON_VIRT_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <libvirt_rpc/remote_protocol.h>
/* rpc/rpc.h brings sys/param.h's MIN and MAX; util/compiler.h defines the project's. */
#undef MIN
#undef MAX

struct vmtab;

/* What a connection has asked for so far. */
struct virt_conn {
	struct vmtab *t;
	bool open;               /* CONNECT_OPEN succeeded */
	uint64_t events;         /* bit n: registered for domain event id n (REGISTER_ANY) */
};

typedef int virt_proc_fn(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen);

struct virt_proc {
	int proc;                /* remote_procedure */
	xdrproc_t args_xdr, ret_xdr;
	size_t args_size, ret_size;
	bool before_open;        /* may be called before CONNECT_OPEN */
	bool slow;               /* may wait on a VM's process: run off the server thread, reads the
				    connection's state without changing it */
	virt_proc_fn *fn;
};

/* The body of a procedure that takes or answers nothing. */
bool_t virt_xdr_none(XDR *x, void *obj);

/* The procedure numbered proc, or NULL: "not supported". */
const struct virt_proc *virt_proc_find(int proc);

/* A lifecycle event of the table as libvirt's (virDomainEventType, its detail). */
void virt_proc_lifecycle(int vmtab_event, int vmtab_reason, int *event, int *detail);

#endif
