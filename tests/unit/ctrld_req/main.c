#include "tk_test.h"

void register_requests(void);
void register_register(void);

int
main(int argc, char **argv)
{
	return tk_test_main(argc, argv, register_requests, register_register, NULL);
}
