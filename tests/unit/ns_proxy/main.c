#include "tk_test.h"

void register_ns_socks(void);
void register_ns_hconn(void);

int
main(int argc, char **argv)
{
	return tk_test_main(argc, argv, register_ns_socks, register_ns_hconn,
	    NULL);
}
