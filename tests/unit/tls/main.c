#include "tk_test.h"

void register_tls_verify(void);

int
main(int argc, char **argv)
{
	return tk_test_main(argc, argv, register_tls_verify, NULL);
}
