#include "tk_test.h"

void register_replay(void);
void register_aip(void);

int
main(int argc, char **argv)
{
	return tk_test_main(argc, argv, register_replay, register_aip, NULL);
}
