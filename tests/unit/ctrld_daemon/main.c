#include "tk_test.h"

void register_ctrld_daemon(void);
void register_ctlconn(void);

int
main(int argc, char **argv)
{
	return tk_test_main(argc, argv, register_ctrld_daemon, register_ctlconn,
	    NULL);
}
