#include "tk_test.h"

void register_ns_api(void);
void register_ns_stack(void);

int
main(int argc, char **argv)
{
	return tk_test_main(argc, argv, register_ns_api, register_ns_stack, NULL);
}
