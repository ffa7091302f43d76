#include "tk_test.h"

void register_ctrld_daemon(void);

int
main(int argc, char **argv)
{
	return tk_test_main(argc, argv, register_ctrld_daemon, NULL);
}
