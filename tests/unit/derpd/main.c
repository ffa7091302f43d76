#include "tk_test.h"

void register_derpd_server(void);
void register_derpd_http(void);
void register_derpd_stun(void);
void register_derpd_fault(void);

int
main(int argc, char **argv)
{
	return tk_test_main(argc, argv, register_derpd_server,
	    register_derpd_http, register_derpd_stun, register_derpd_fault, NULL);
}
