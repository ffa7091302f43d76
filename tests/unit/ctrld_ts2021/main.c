#include "tk_test.h"

void register_ts2021(void);

int
main(int argc, char **argv)
{
	return tk_test_main(argc, argv, register_ts2021, NULL);
}
