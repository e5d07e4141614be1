/* placeholder replaced by the board work */
#include <stdio.h>
#include "cmd/ftvm.h"
int cmd_run_main(int argc, char **argv)
{
	fprintf(stderr, "ftvm run: the machine is not built yet\n");
	return 1;
}
