#include "tk_test.h"

void register_ns_dns_msg(void);
void register_ns_dns_table(void);
void register_ns_dns_fwd(void);
void register_ns_dns_server(void);

int
main(int argc, char **argv)
{
	return tk_test_main(argc, argv, register_ns_dns_msg,
	    register_ns_dns_table, register_ns_dns_fwd, register_ns_dns_server,
	    NULL);
}
