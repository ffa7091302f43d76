#include "tk_test.h"

void register_filter(void);

int
main(int argc, char **argv)
{
	return tk_test_main(argc, argv, register_filter, NULL);
}
