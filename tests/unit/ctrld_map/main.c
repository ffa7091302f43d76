#include "tk_test.h"

void register_mapstate(void);
void register_contract(void);

int
main(int argc, char **argv)
{
	return tk_test_main(argc, argv, register_mapstate, register_contract, NULL);
}
