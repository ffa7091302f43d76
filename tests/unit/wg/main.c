#include "tk_test.h"

void register_wg_device(void);

int
main(int argc, char **argv)
{
	return tk_test_main(argc, argv, register_wg_device, NULL);
}
