#include "tk/core.h"
#include "tk_test.h"

void register_crypto_unit(void);

int
main(int argc, char **argv)
{
	tk_init();
	return tk_test_main(argc, argv, register_crypto_unit, NULL);
}
